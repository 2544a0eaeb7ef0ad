//! `lunlinkctl lus`: logical units with their paths (native multipath), and `lunlinkctl lu
//! policy|fail-queued`.

use anyhow::Context as _;
use lunlink_dbus::LOGICAL_UNIT_INTERFACE;

use super::Ctx;
use crate::exit::CtlError;
use crate::model::{LogicalUnitInfo, Snapshot};
use crate::output::{format_size, write_stdout, Table};

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    if ctx.out.json {
        return ctx.out.json(&snap.lus);
    }
    write_stdout(&render(&snap, ctx.out.legend))
}

/// One row per path: WWID STATE POLICY DEVICE SIZE TARGET PORTAL PATH-STATE ALUA.
pub fn render(snap: &Snapshot, legend: bool) -> String {
    let mut t = Table::new(
        &["WWID", "STATE", "POLICY", "DEVICE", "SIZE", "TARGET", "PORTAL", "PATH", "ALUA"],
        "logical units",
    );
    for lu in &snap.lus {
        let state = if lu.queued_io > 0 { format!("{} ({} queued)", lu.state, lu.queued_io) } else { lu.state.clone() };
        if lu.paths.is_empty() {
            t.row(vec![lu.wwid.clone(), state, lu.policy.clone(), lu.device.clone(), format_size(lu.size)]);
            continue;
        }
        for (i, p) in lu.paths.iter().enumerate() {
            let first = i == 0;
            t.row(vec![
                if first { lu.wwid.clone() } else { "\"".into() },
                if first { state.clone() } else { "\"".into() },
                if first { lu.policy.clone() } else { "\"".into() },
                if first { lu.device.clone() } else { "\"".into() },
                if first { format_size(lu.size) } else { "\"".into() },
                p.target.clone(),
                p.portal.clone(),
                p.state.clone(),
                match (p.access_state.as_str(), p.target_port_group) {
                    ("", None) => "-".into(),
                    ("", Some(g)) => format!("group {g}"),
                    (s, None) => s.to_owned(),
                    (s, Some(g)) => format!("{s} (group {g})"),
                },
            ]);
        }
    }
    t.render(legend)
}

/// What `lu` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Set how IO is spread over the paths: failover, round-robin or queue-depth.
    Policy {
        /// The LU's WWID (see 'lunlinkctl lus').
        wwid: String,
        #[arg(value_name = "failover|round-robin|queue-depth")]
        policy: String,
    },
    /// Fail at once the IO that waits for a usable path (the way out of a dead array).
    FailQueued {
        /// The LU's WWID (see 'lunlinkctl lus').
        wwid: String,
    },
}

fn find<'a>(snap: &'a Snapshot, wwid: &str) -> Result<&'a LogicalUnitInfo, CtlError> {
    snap.lus
        .iter()
        .find(|l| l.wwid == wwid || l.path == wwid)
        .ok_or_else(|| CtlError::NotFound(format!("no logical unit {wwid}; see 'lunlinkctl lus'")))
}

pub async fn run_cmd(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    match cmd {
        Cmd::Policy { wwid, policy } => {
            let lu = find(&snap, &wwid)?;
            ctx.act::<_, ()>(&lu.path, LOGICAL_UNIT_INTERFACE, "SetPolicy", &(policy.as_str(),))
                .await
                .with_context(|| format!("cannot set the policy of {wwid}"))
        }
        Cmd::FailQueued { wwid } => {
            let lu = find(&snap, &wwid)?;
            let n: u32 = ctx
                .act(&lu.path, LOGICAL_UNIT_INTERFACE, "FailQueuedIo", &())
                .await
                .with_context(|| format!("cannot fail the queued IO of {wwid}"))?;
            write_stdout(&format!("{n} queued IO failed\n"))
        }
    }
}
