//! `lunlinkctl sessions`: every session with its state.

use super::Ctx;
use crate::model::{short_id, Snapshot};
use crate::output::{write_stdout, Table};

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    if ctx.out.json {
        return ctx.out.json(&snap.sessions);
    }
    write_stdout(&render(&snap, ctx.out.legend))
}

/// SESSION (the short id 'session show' and 'logout' accept) TARGET PORTAL STATE LUNS.
pub fn render(snap: &Snapshot, legend: bool) -> String {
    let mut t = Table::new(
        &["SESSION", "TARGET", "PORTAL", "STATE", "LUNS"],
        "sessions",
    );
    for s in &snap.sessions {
        t.row(vec![
            short_id(&s.path).to_owned(),
            s.target.clone(),
            s.portal.clone(),
            s.state.clone(),
            s.luns.len().to_string(),
        ]);
    }
    t.render(legend)
}

#[cfg(test)]
mod tests {
    use crate::model::tests::sample;

    #[test]
    fn table() {
        assert_eq!(
            super::render(&sample(), false),
            "5  iqn.2026-01.org.example:b  192.0.2.2:3260  logged-in  1\n"
        );
    }
}
