//! `lunlinkctl login TARGET` / `login --all`: iSCSI login (RFC 7143 §6) through lunlinkd.

use anyhow::Context as _;
use lunlink_dbus::Options;
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

/// One session made by `login --all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedIn {
    pub target: String,
    pub portal: String,
    pub session: String,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    if args.all {
        return run_all(ctx, args.automatic_only).await;
    }
    let Some(target) = args.target.as_deref() else {
        return Err(CtlError::Invalid("give a TARGET or --all".into()).into());
    };
    let opts = args.auth.apply(Options::new())?;
    let session = ctx
        .manager()
        .await?
        .login(
            target,
            args.portal.as_deref().unwrap_or(""),
            &opts.to_dict(),
        )
        .await?; // the daemon's message already names the target
    if ctx.out.json {
        return ctx
            .out
            .json(&serde_json::json!({ "session": session.as_str() }));
    }
    write_stdout(&format!("{}\n", session.as_str()))
}

async fn run_all(ctx: &Ctx, automatic_only: bool) -> anyhow::Result<()> {
    let mut opts = Options::new();
    if automatic_only {
        opts = opts.automatic_only(true);
    }
    let sessions = ctx
        .manager()
        .await?
        .login_all(&opts.to_dict())
        .await
        .context("login failed")?;
    let snap = ctx.snapshot().await?;
    let rows: Vec<LoggedIn> = sessions
        .iter()
        .map(|p| {
            let info = snap.session_at(p.as_str());
            LoggedIn {
                target: info.map(|s| s.target.clone()).unwrap_or_default(),
                portal: info.map(|s| s.portal.clone()).unwrap_or_default(),
                session: p.to_string(),
            }
        })
        .collect();
    if ctx.out.json {
        return ctx.out.json(&rows);
    }
    write_stdout(&render_all(&rows, ctx.out.legend))
}

pub fn render_all(rows: &[LoggedIn], legend: bool) -> String {
    let mut t = Table::new(&["TARGET", "PORTAL", "SESSION"], "sessions");
    for r in rows {
        t.row(vec![r.target.clone(), r.portal.clone(), r.session.clone()]);
    }
    t.render(legend)
}
