//! `lunlinkctl nodes`: every known target + portal.

use super::Ctx;
use crate::model::Snapshot;
use crate::output::{write_stdout, Table};

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    if ctx.out.json {
        return ctx.out.json(&snap.nodes);
    }
    write_stdout(&render(&snap, ctx.out.legend))
}

/// TARGET PORTAL TPGT STARTUP AUTH SESSION; SESSION is the session's state, "-" when none.
pub fn render(snap: &Snapshot, legend: bool) -> String {
    let mut t = Table::new(
        &["TARGET", "PORTAL", "TPGT", "STARTUP", "AUTH", "SESSION"],
        "nodes",
    );
    for n in &snap.nodes {
        let session = match &n.session {
            None => String::new(),
            Some(p) => snap
                .session_at(p)
                .map(|s| s.state.clone())
                .unwrap_or_else(|| p.clone()),
        };
        t.row(vec![
            n.target.clone(),
            n.portal.clone(),
            n.tpgt.to_string(),
            n.startup.clone(),
            n.auth_method.clone(),
            session,
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
TARGET                     PORTAL              TPGT  STARTUP  AUTH  SESSION
iqn.2026-01.org.example:a  192.0.2.1:3260      1     manual   none  -
iqn.2026-01.org.example:b  192.0.2.2:3260      1     manual   none  logged-in
iqn.2026-01.org.example:b  [2001:db8::2]:3260  1     manual   none  -

3 nodes listed.
";
        assert_eq!(super::render(&sample(), true), expected);
    }
}
