//! Rendering: aligned tables, "Key: value" blocks, human sizes and JSON.

use std::io::Write as _;

use serde::Serialize;

/// How the user asked for output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// `--json`: machine-readable JSON on stdout instead of text.
    pub json: bool,
    /// Not `--no-legend`: print table headers and the "N listed." footer.
    pub legend: bool,
}

impl Output {
    /// Print `value` as pretty JSON followed by a newline.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        write_stdout(&format!("{text}\n"))
    }
}

/// Write to stdout; a closed pipe (`lunlinkctl nodes | head -1`) is not an error worth a
/// message, everything else is.
pub fn write_stdout(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A table of text cells with aligned columns, in the style of networkctl.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Plural noun for the footer ("nodes" gives "2 nodes listed.").
    noun: &'static str,
}

impl Table {
    /// A table with these column headers; `noun` names the rows in the footer.
    pub fn new(headers: &[&'static str], noun: &'static str) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
            noun,
        }
    }

    /// Add a row; empty cells show as "-" so that columns stay readable by `awk`.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells
            .into_iter()
            .map(|c| if c.is_empty() { "-".to_owned() } else { c })
            .collect();
        cells.resize(self.headers.len(), "-".to_owned());
        self.rows.push(cells);
    }

    /// The text: header (with legend), rows, then a blank line and "N <noun> listed." (with
    /// legend). Columns are separated by two spaces; lines carry no trailing blanks.
    pub fn render(&self, legend: bool) -> String {
        let mut widths: Vec<usize> = if legend {
            self.headers.iter().map(|h| h.chars().count()).collect()
        } else {
            vec![0; self.headers.len()]
        };
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.zip(&widths).enumerate() {
                if i > 0 {
                    l.push_str("  ");
                }
                l.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count());
                l.push_str(&" ".repeat(pad));
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        if legend {
            line(&mut self.headers.iter().copied());
        }
        for row in &self.rows {
            line(&mut row.iter().map(String::as_str));
        }
        if legend {
            out.push_str(&format!("\n{} {} listed.\n", self.rows.len(), self.noun));
        }
        out
    }
}

/// A "Key: value" block with right-aligned keys, as `networkctl status` prints; a value with
/// several lines continues under the first.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    items: Vec<(&'static str, Vec<String>)>,
}

impl Fields {
    /// No fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a one-line field; an empty value shows as "-".
    pub fn add(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.lines(key, vec![value.into()])
    }

    /// Add a field of several lines (none shows as "-").
    pub fn lines(&mut self, key: &'static str, values: Vec<String>) -> &mut Self {
        let mut values: Vec<String> = values
            .into_iter()
            .map(|v| if v.is_empty() { "-".to_owned() } else { v })
            .collect();
        if values.is_empty() {
            values.push("-".to_owned());
        }
        self.items.push((key, values));
        self
    }

    /// The text.
    pub fn render(&self) -> String {
        let width = self
            .items
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, values) in &self.items {
            for (i, v) in values.iter().enumerate() {
                if i == 0 {
                    out.push_str(&format!("{key:>width$}: {v}\n"));
                } else {
                    out.push_str(&format!("{:width$}  {v}\n", ""));
                }
            }
        }
        out
    }
}

/// A byte count for people: binary units with one decimal ("10.0 GiB"), plain bytes below
/// 1 KiB ("512 B").
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // f64 is exact enough for one decimal; precision loss on huge values is invisible here.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Round first so that 1023.96 KiB shows as "1.0 MiB", not "1024.0 KiB".
    while (value * 10.0).round() / 10.0 >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1.0 KiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10 << 30), "10.0 GiB");
        assert_eq!(format_size((1 << 40) + (1 << 39)), "1.5 TiB");
        assert_eq!(format_size((1 << 20) - 1), "1.0 MiB");
        assert_eq!(format_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn table_aligns_columns_and_counts_rows() {
        let mut t = Table::new(&["TARGET", "PORTAL", "TPGT"], "targets");
        t.row(vec![
            "iqn.2026-01.org.example:a".into(),
            "192.0.2.1:3260".into(),
            "1".into(),
        ]);
        t.row(vec![
            "iqn.b".into(),
            "[2001:db8::1]:3260".into(),
            "12".into(),
        ]);
        let expected = "\
TARGET                     PORTAL              TPGT
iqn.2026-01.org.example:a  192.0.2.1:3260      1
iqn.b                      [2001:db8::1]:3260  12

2 targets listed.
";
        assert_eq!(t.render(true), expected);
    }

    #[test]
    fn table_without_legend_has_rows_only_and_dashes_for_empty_cells() {
        let mut t = Table::new(&["LUN", "DEVICE", "WWID"], "LUNs");
        t.row(vec!["0".into(), String::new(), "naa.1".into()]);
        t.row(vec!["12".into(), "/dev/ublkb1".into()]);
        assert_eq!(
            t.render(false),
            "0   -            naa.1\n12  /dev/ublkb1  -\n"
        );
        let empty = Table::new(&["A", "B"], "things");
        assert_eq!(empty.render(true), "A  B\n\n0 things listed.\n");
        assert_eq!(empty.render(false), "");
    }

    #[test]
    fn fields_align_keys_right() {
        let mut f = Fields::new();
        f.add("Target", "iqn.a").add("TSIH", "3").lines(
            "Parameters",
            vec!["DataDigest=None".into(), "MaxBurstLength=262144".into()],
        );
        f.add("Username", "");
        let expected = "    Target: iqn.a
      TSIH: 3
Parameters: DataDigest=None
            MaxBurstLength=262144
  Username: -
";
        assert_eq!(f.render(), expected);
    }
}
