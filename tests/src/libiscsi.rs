//! libiscsi's command-line tools (`libiscsi-bin`) as a peer initiator: a second opinion on what
//! a target offers.

use std::process::Command;
use std::time::Duration;

use crate::util::{run_with_timeout, tool_path, CmdOutput};

/// A target as `iscsi-ls -s` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTarget {
    pub iqn: String,
    /// "ADDR:PORT,TPGT" as printed.
    pub portal: String,
    pub luns: Vec<ListedLun>,
}

/// A LUN line of `iscsi-ls -s`: "Lun:1    Type:DIRECT_ACCESS (Size:63M)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLun {
    pub lun: u64,
    /// SCSI peripheral type as libiscsi names it (DIRECT_ACCESS, STORAGE_ARRAY_CONTROLLER, ...).
    pub kind: String,
    /// The size label (see [`iscsi_ls_size_label`]); absent for LUNs without a capacity.
    pub size: Option<String>,
}

/// Runs `iscsi-ls -s URL` (30 s limit). CHAP: "iscsi://user%secret@127.0.0.1:PORT"; mutual:
/// append "/?target_user=U&target_password=P".
#[track_caller]
pub fn iscsi_ls(url: &str) -> CmdOutput {
    let bin = tool_path("iscsi-ls");
    run_with_timeout(Command::new(bin).args(["-s", url]), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("cannot run iscsi-ls: {e}"))
}

/// Parses the output of `iscsi-ls -s`. Lines it does not know (error messages) are skipped.
pub fn parse_iscsi_ls(out: &str) -> Vec<ListedTarget> {
    let mut targets: Vec<ListedTarget> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Target:") {
            let (iqn, portal) = match rest.split_once(" Portal:") {
                Some((i, p)) => (i.trim(), p.trim()),
                None => (rest.trim(), ""),
            };
            targets.push(ListedTarget {
                iqn: iqn.to_owned(),
                portal: portal.to_owned(),
                luns: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("Lun:") {
            let Some(target) = targets.last_mut() else {
                continue;
            };
            let Some((num, tail)) = rest.split_once(char::is_whitespace) else {
                continue;
            };
            let Ok(lun) = num.parse() else { continue };
            let tail = tail.trim();
            let Some(tail) = tail.strip_prefix("Type:") else {
                continue;
            };
            let (kind, size) = match tail.split_once(" (Size:") {
                Some((k, s)) => (k, Some(s.trim_end_matches(')').trim().to_owned())),
                None => (tail, None),
            };
            target.luns.push(ListedLun {
                lun,
                kind: kind.trim().to_owned(),
                size,
            });
        }
    }
    targets
}

/// The size label `iscsi-ls -s` prints for a LUN of `size_bytes` with `block_size`-byte blocks.
///
/// Measured against libiscsi 1.19: it multiplies the *last* LBA (not the block count) by the
/// block size, then divides by 1024 while the value is above 1024, so a 64 MiB LUN shows as
/// "63M" and a 1 MiB + 512 B one as "1024k".
pub fn iscsi_ls_size_label(size_bytes: u64, block_size: u64) -> String {
    let blocks = size_bytes.checked_div(block_size).unwrap_or(0);
    let mut value = blocks.saturating_sub(1).saturating_mul(block_size);
    let mut unit = 0;
    while value > 1024 && unit < 4 {
        value /= 1024;
        unit += 1;
    }
    let units = ["", "k", "M", "G", "T"];
    format!("{value}{}", units.get(unit).copied().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels_match_what_iscsi_ls_printed() {
        // (backing file size, label iscsi-ls 1.19 printed against tgtd 1.0.85, 512-byte blocks)
        let seen = [
            (1_048_576, "1023k"),
            (1_049_088, "1024k"),
            (2_097_152, "1M"),
            (102_400, "99k"),
            (1_536, "1024"),
            (1_073_741_824, "1023M"),
            (1_074_790_400, "1024M"),
            (5_000_000, "4M"),
            (67_108_864, "63M"),
            (10_485_760, "9M"),
            (1 << 40, "1023G"),
        ];
        for (bytes, label) in seen {
            assert_eq!(iscsi_ls_size_label(bytes, 512), label, "{bytes} bytes");
        }
        assert_eq!(iscsi_ls_size_label(0, 512), "0");
        assert_eq!(iscsi_ls_size_label(4096, 0), "0");
    }

    #[test]
    fn parses_listing() {
        // Captured from `iscsi-ls -s` against tgtd, including a login failure line.
        let out = "Target:iqn.2024-01.test:b Portal:127.0.0.1:42987,1\n\
                   Lun:0    Type:STORAGE_ARRAY_CONTROLLER\n\
                   Lun:1    Type:DIRECT_ACCESS (Size:1023G)\n\
                   Target:iqn.2024-01.test:c Portal:127.0.0.1:42987,1\n\
                   Lun:5    Type:DIRECT_ACCESS (Size:1024 )\n\
                   Target:iqn.2024-01.test:a Portal:127.0.0.1:42987,1\n\
                   list_luns: iscsi_connect failed. Failed to log in to target. Status: Authentication failure(513)\n";
        let t = parse_iscsi_ls(out);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].iqn, "iqn.2024-01.test:b");
        assert_eq!(t[0].portal, "127.0.0.1:42987,1");
        assert_eq!(
            t[0].luns,
            vec![
                ListedLun {
                    lun: 0,
                    kind: "STORAGE_ARRAY_CONTROLLER".into(),
                    size: None
                },
                ListedLun {
                    lun: 1,
                    kind: "DIRECT_ACCESS".into(),
                    size: Some("1023G".into())
                },
            ]
        );
        assert_eq!(t[1].luns[0].size.as_deref(), Some("1024"));
        assert!(
            t[2].luns.is_empty(),
            "a target that refused the login lists no LUNs"
        );
    }
}
