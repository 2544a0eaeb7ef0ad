//! `lunlinkctl logout TARGET|SESSION` / `logout --all`: iSCSI logout (RFC 7143 §11.14).

use anyhow::Context as _;
use lunlink_dbus::zvariant::ObjectPath;
use lunlink_dbus::{Options, MANAGER_INTERFACE, ROOT_PATH};

use super::Ctx;
use crate::exit::CtlError;

/// Log out of one session, or of all of them.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A target name, a session object path, or the session id shown by 'lunlinkctl sessions'.
    #[arg(value_name = "TARGET|SESSION", required_unless_present = "all")]
    pub session: Option<String>,

    /// The portal of the session to end, when the target has sessions through several.
    #[arg(long, value_name = "PORTAL")]
    pub portal: Option<String>,

    /// Log out of every session.
    #[arg(long, conflicts_with_all = ["session", "portal"])]
    pub all: bool,

    /// Remove the block devices even if they are mounted or held open.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    let targets: Vec<(String, String)> = if args.all {
        snap.sessions
            .iter()
            .map(|s| (s.path.clone(), s.target.clone()))
            .collect()
    } else {
        let Some(arg) = args.session.as_deref() else {
            return Err(CtlError::Invalid("give a TARGET, a SESSION or --all".into()).into());
        };
        let s = snap
            .find_session(arg, args.portal.as_deref())
            .context("logout failed")?;
        vec![(s.path.clone(), s.target.clone())]
    };
    let mut opts = Options::new();
    if args.force {
        opts = opts.force(true);
    }
    let dict = opts.to_dict();
    // With --all, try every session: each failure after the first gets its own line, the
    // first one ends the run (and picks the exit code).
    let mut first_err: Option<anyhow::Error> = None;
    let mut failed = 0usize;
    let total = targets.len();
    for (path, target) in targets {
        let path = ObjectPath::try_from(path.as_str())
            .map_err(|e| CtlError::Invalid(format!("bad session path {path}: {e}")))?;
        let r = ctx
            .act::<_, ()>(ROOT_PATH, MANAGER_INTERFACE, "Logout", &(&path, &dict))
            .await
            .with_context(|| format!("logout from {target} failed"));
        if let Err(e) = r {
            failed += 1;
            match first_err {
                None => first_err = Some(e),
                Some(_) => eprintln!("lunlinkctl: {e:#}"),
            }
        }
    }
    match first_err {
        Some(e) if total > 1 => Err(e.context(format!("{failed} of {total} logouts failed"))),
        Some(e) => Err(e),
        None => Ok(()),
    }
}
