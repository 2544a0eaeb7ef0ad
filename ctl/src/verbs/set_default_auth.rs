//! `lunlinkctl set-default-auth session|discovery`: credentials used when a node has none
//! of its own, or for SendTargets discovery sessions (RFC 7143 §13.21, SessionType=Discovery).

use anyhow::Context as _;
use lunlink_dbus::values::AuthScope;
use lunlink_dbus::{Options, MANAGER_INTERFACE, ROOT_PATH};

use super::Ctx;
use crate::auth::AuthArgs;
use crate::exit::CtlError;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// session: defaults for normal sessions; discovery: for discovery sessions.
    #[arg(value_name = "session|discovery")]
    pub scope: AuthScope,

    #[command(flatten)]
    pub auth: AuthArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    if args.auth.is_empty() {
        return Err(CtlError::Invalid(
            "give --auth-file, --password-prompt or --auth-method (use '--auth-method none' \
             to turn authentication off)"
                .into(),
        )
        .into());
    }
    let opts = args.auth.apply(Options::new())?;
    ctx.act::<_, ()>(ROOT_PATH, MANAGER_INTERFACE, "SetDefaultAuth", &(args.scope.as_str(), opts.to_dict()))
        .await
        .with_context(|| format!("cannot set the default {} authentication", args.scope))
}
