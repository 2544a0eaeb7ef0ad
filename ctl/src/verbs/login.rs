//! `lunlinkctl login TARGET` / `login --all`: iSCSI login (RFC 7143 §6) through lunlinkd.

use anyhow::Context as _;
use lunlink_dbus::zvariant::OwnedObjectPath;
use lunlink_dbus::{Options, MANAGER_INTERFACE, ROOT_PATH};
use serde::Serialize;

use super::Ctx;
use crate::auth::AuthArgs;
use crate::exit::CtlError;
use crate::output::{write_stdout, Table};

/// Log in to a target (every known portal unless --portal), or to all nodes.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Target name (iqn./eui./naa.); see 'lunlinkctl nodes'.
    #[arg(required_unless_present = "all")]
    pub target: Option<String>,

    /// Only this portal of the target (host[:port]).
    #[arg(long, value_name = "PORTAL")]
    pub portal: Option<String>,

    /// Log in to every node.
    #[arg(
        long,
        conflicts_with_all = ["target", "portal", "auth_file", "password_prompt", "auth_method", "chap_algorithms"]
    )]
    pub all: bool,

    /// With --all: only nodes whose startup is automatic.
    // Not `requires = "all"`: a flag's default value would satisfy it. Without --all a
    // TARGET is required, and a TARGET conflicts with this.
    #[arg(long, conflicts_with = "target")]
    pub automatic_only: bool,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// What `login --all` did for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedIn {
    pub target: String,
    pub portal: String,
    /// The session, None when the login failed.
    pub session: Option<String>,
    /// The D-Bus error name when the login failed.
    pub error: Option<String>,
    pub message: Option<String>,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    if args.all {
        return run_all(ctx, args.automatic_only).await;
    }
    let Some(target) = args.target.as_deref() else {
        return Err(CtlError::Invalid("give a TARGET or --all".into()).into());
    };
    let opts = args.auth.apply(Options::new())?;
    let session: OwnedObjectPath = ctx
        .act(ROOT_PATH, MANAGER_INTERFACE, "Login", &(target, args.portal.as_deref().unwrap_or(""), opts.to_dict()))
        .await?; // the daemon's message already names the target
    if ctx.out.json {
        return ctx
            .out
            .json(&serde_json::json!({ "session": session.as_str() }));
    }
    write_stdout(&format!("{}\n", session.as_str()))
}

/// Every node at once (the daemon runs the logins in parallel): the sessions made on stdout,
/// one line per failed node on stderr, and exit 11 when any failed.
async fn run_all(ctx: &Ctx, automatic_only: bool) -> anyhow::Result<()> {
    let mut opts = Options::new();
    if automatic_only {
        opts = opts.automatic_only(true);
    }
    let results: Vec<(OwnedObjectPath, OwnedObjectPath, String, String)> = ctx
        .act(ROOT_PATH, MANAGER_INTERFACE, "LoginAllWithResults", &(opts.to_dict(),))
        .await
        .context("login failed")?;
    let snap = ctx.snapshot().await?;
    let rows: Vec<LoggedIn> = results
        .iter()
        .map(|(node, session, error, message)| {
            let n = snap.nodes.iter().find(|n| n.path == node.as_str());
            let ok = session.as_str() != lunlink_dbus::NO_OBJECT_PATH;
            LoggedIn {
                target: n.map(|n| n.target.clone()).unwrap_or_default(),
                portal: n.map(|n| n.portal.clone()).unwrap_or_default(),
                session: ok.then(|| session.to_string()),
                error: (!ok).then(|| error.clone()),
                message: (!ok).then(|| message.clone()),
            }
        })
        .collect();
    let failed: Vec<&LoggedIn> = rows.iter().filter(|r| r.session.is_none()).collect();
    for f in &failed {
        eprintln!("lunlinkctl: {}", failure_line(f));
    }
    if ctx.out.json {
        ctx.out.json(&rows)?;
    } else {
        write_stdout(&render_all(&rows, ctx.out.legend))?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(CtlError::SomeFailed(format!("{} of {} logins failed", failed.len(), rows.len())).into())
}

/// One line for a failed node: the daemon's message names target and portal; the error's
/// short name follows in brackets for scripts that grep.
fn failure_line(r: &LoggedIn) -> String {
    let name = r.error.as_deref().unwrap_or_default();
    let short = name.rsplit('.').next().unwrap_or(name);
    let msg = r.message.as_deref().filter(|m| !m.is_empty()).unwrap_or(short);
    if msg.contains(&r.target) {
        format!("{msg} [{short}]")
    } else {
        format!("login to {} on {} failed: {msg} [{short}]", r.target, r.portal)
    }
}

pub fn render_all(rows: &[LoggedIn], legend: bool) -> String {
    let mut t = Table::new(&["TARGET", "PORTAL", "SESSION"], "sessions");
    for r in rows.iter().filter(|r| r.session.is_some()) {
        t.row(vec![r.target.clone(), r.portal.clone(), r.session.clone().unwrap_or_default()]);
    }
    t.render(legend)
}
