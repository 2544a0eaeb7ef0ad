//! `lunlinkctl luns`: every LUN of every session and its block device.

use super::Ctx;
use crate::model::Snapshot;
use crate::output::{format_size, write_stdout, Table};

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    if ctx.out.json {
        return ctx.out.json(&snap.luns);
    }
    write_stdout(&render(&snap, ctx.out.legend))
}

/// TARGET LUN VENDOR PRODUCT SIZE WWID DEVICE BY-PATH; a LUN without a device shows "-"
/// (the reason is in `--json` as device_error).
pub fn render(snap: &Snapshot, legend: bool) -> String {
    let mut t = Table::new(
        &["TARGET", "LUN", "VENDOR", "PRODUCT", "SIZE", "WWID", "DEVICE", "BY-PATH"],
        "LUNs",
    );
    for l in &snap.luns {
        t.row(vec![
            l.target.clone(),
            l.lun.to_string(),
            l.vendor.clone(),
            l.product.clone(),
            format_size(l.size),
            l.wwid.clone(),
            if l.offline { format!("{} (offline)", l.device) } else { l.device.clone() },
            l.by_path.clone(),
        ]);
    }
    t.render(legend)
}

#[cfg(test)]
mod tests {
    use crate::model::tests::sample;

    #[test]
    fn table() {
        let expected = "\
TARGET                     LUN  VENDOR   PRODUCT  SIZE      WWID         DEVICE       BY-PATH
iqn.2026-01.org.example:b  0    LIO-ORG  disk     10.0 GiB  naa.6001405  /dev/ublkb0  -

1 LUNs listed.
";
        assert_eq!(super::render(&sample(), true), expected);
    }
}
