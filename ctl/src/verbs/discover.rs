//! `lunlinkctl discover PORTAL`: SendTargets discovery (RFC 7143 §13.3, Appendix C).

use lunlink_dbus::values::Startup;
use lunlink_dbus::{Options, MANAGER_INTERFACE, ROOT_PATH};
use serde::Serialize;

use super::Ctx;
use crate::auth::AuthArgs;
use crate::output::{write_stdout, Table};

/// Ask a portal which targets it offers and remember them as nodes.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Portal to ask: host[:port], IPv6 in brackets; the port defaults to 3260.
    pub portal: String,

    /// Startup mode of nodes created by this discovery.
    #[arg(long, value_name = "manual|automatic")]
    pub startup: Option<Startup>,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// One discovered (target, portal) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub target: String,
    pub portal: String,
    pub tpgt: u16,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let mut opts = args.auth.apply(Options::new())?;
    if let Some(s) = args.startup {
        opts = opts.startup(s);
    }
    let found: Vec<(String, String, u16)> = ctx
        .act(ROOT_PATH, MANAGER_INTERFACE, "Discover", &(args.portal.as_str(), opts.to_dict()))
        .await?; // the daemon's message already says which discovery failed
    let found: Vec<Found> = found
        .into_iter()
        .map(|(target, portal, tpgt)| Found {
            target,
            portal,
            tpgt,
        })
        .collect();
    if ctx.out.json {
        return ctx.out.json(&found);
    }
    write_stdout(&render(&found, ctx.out.legend))
}

pub fn render(found: &[Found], legend: bool) -> String {
    let mut t = Table::new(&["TARGET", "PORTAL", "TPGT"], "targets");
    for f in found {
        t.row(vec![f.target.clone(), f.portal.clone(), f.tpgt.to_string()]);
    }
    t.render(legend)
}
