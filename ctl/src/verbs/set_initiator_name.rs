//! `lunlinkctl set-initiator-name NAME`: a new iSCSI name for this initiator (RFC 7143 §4.2.7).
//! lunlinkd refuses while sessions exist (targets know the initiator by its name) and when the
//! config file sets the name.

use anyhow::Context as _;
use lunlink_dbus::{MANAGER_INTERFACE, ROOT_PATH};

use super::Ctx;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The new name: iqn.YYYY-MM.reversed.domain[:id], eui.<16 hex> or naa.<16 or 32 hex>.
    pub name: String,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    ctx.act::<_, ()>(ROOT_PATH, MANAGER_INTERFACE, "SetInitiatorName", &(args.name.as_str(),))
        .await
        .context("cannot change the initiator name")
}
