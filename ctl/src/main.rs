//! lunlinkctl: command-line client of lunlinkd, in the manner of networkctl.
//!
//! Every verb talks to lunlinkd over D-Bus (`dbus/API.md`); the exit code tells the kind of
//! failure (see [`exit`]) and `--json` gives machine-readable output for scripts and tests.

mod agent;
mod auth;
mod docs;
mod exit;
mod model;
mod output;
// The daemon's check of the host's ublk support, shared as a file (it needs only std).
#[allow(dead_code)]
#[path = "../../daemon/lunlinkd/src/ublk_check.rs"]
mod ublk_check;
mod verbs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lunlink_dbus::BusChoice;

use crate::exit::CtlError;
use crate::output::Output;
use crate::verbs::Ctx;

const LONG_ABOUT: &str = "\
Control lunlinkd, the lunlink iSCSI initiator: discover targets, log in and out, and show
nodes, sessions and LUNs (exposed as ublk block devices).

Secrets never go on the command line: give CHAP credentials with --auth-file FILE (or - for
standard input), a file of lines 'username=', 'password=', 'reverse-username=',
'reverse-password=', or ask for the password with --password-prompt.

Without a verb, 'status' is shown.";

#[derive(Debug, Parser)]
#[command(
    name = "lunlinkctl",
    version,
    about = "Control the lunlink iSCSI initiator",
    long_about = LONG_ABOUT,
    after_long_help = exit::HELP,
)]
pub struct Cli {
    /// Bus to reach lunlinkd on: system, session, or a D-Bus address such as
    /// unix:path=/run/test/bus.
    #[arg(
        long,
        global = true,
        value_name = "system|session|ADDRESS",
        default_value = "system",
        display_order = 900
    )]
    pub bus: BusChoice,

    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 901)]
    pub json: bool,

    /// Do not print table headers and footers.
    #[arg(long, global = true, display_order = 902)]
    pub no_legend: bool,

    /// Never ask for a password: without it, a change polkit wants authentication for
    /// asks on this terminal (pkttyagent), or through the session's agent.
    #[arg(long, global = true, display_order = 903)]
    pub no_ask_password: bool,

    #[command(subcommand)]
    pub verb: Option<Verb>,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Show the initiator name, version and object counts (the default).
    Status,
    /// Ask a portal for its targets (SendTargets) and remember them as nodes.
    Discover(verbs::discover::Args),
    /// Log in to a target, or to all nodes with --all; prints the session.
    Login(verbs::login::Args),
    /// Log out of a session (by target or session), or of all with --all.
    Logout(verbs::logout::Args),
    /// List the known nodes (target + portal).
    Nodes,
    /// Show, create, update or delete a node.
    Node {
        #[command(subcommand)]
        cmd: verbs::node::Cmd,
    },
    /// List the sessions.
    Sessions,
    /// Show a session.
    Session {
        #[command(subcommand)]
        cmd: verbs::session::Cmd,
    },
    /// List the LUNs and their block devices.
    Luns,
    /// List the logical units with their paths (multipath): state, policy, each path's state.
    Lus,
    /// Set a logical unit's path policy, or fail the IO that waits for a path.
    Lu {
        #[command(subcommand)]
        cmd: verbs::lus::Cmd,
    },
    /// Set the default CHAP credentials for sessions or for discovery.
    SetDefaultAuth(verbs::set_default_auth::Args),
    /// Change the initiator's iSCSI name (only while no session is logged in).
    SetInitiatorName(verbs::set_initiator_name::Args),
    /// Take over another initiator's configuration (open-iscsi's node records).
    Import {
        #[command(subcommand)]
        cmd: verbs::import::Cmd,
    },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let conn = cli
        .bus
        .connect()
        .await
        .map_err(|source| CtlError::Unreachable {
            bus: cli.bus.describe(),
            source: Box::new(source),
        })?;
    let ctx = Ctx {
        conn,
        out: Output {
            json: cli.json,
            legend: !cli.no_legend,
        },
        ask_password: !cli.no_ask_password,
    };
    match cli.verb.unwrap_or(Verb::Status) {
        Verb::Status => verbs::status::run(&ctx).await,
        Verb::Discover(a) => verbs::discover::run(&ctx, a).await,
        Verb::Login(a) => verbs::login::run(&ctx, a).await,
        Verb::Logout(a) => verbs::logout::run(&ctx, a).await,
        Verb::Nodes => verbs::nodes::run(&ctx).await,
        Verb::Node { cmd } => verbs::node::run(&ctx, cmd).await,
        Verb::Sessions => verbs::sessions::run(&ctx).await,
        Verb::Session { cmd } => verbs::session::run(&ctx, cmd).await,
        Verb::Luns => verbs::luns::run(&ctx).await,
        Verb::Lus => verbs::lus::run(&ctx).await,
        Verb::Lu { cmd } => verbs::lus::run_cmd(&ctx, cmd).await,
        Verb::SetDefaultAuth(a) => verbs::set_default_auth::run(&ctx, a).await,
        Verb::SetInitiatorName(a) => verbs::set_initiator_name::run(&ctx, a).await,
        Verb::Import { cmd } => verbs::import::run(&ctx, cmd).await,
    }
}

fn main() -> ExitCode {
    // Package build only (scripts/package): the man page and completions, see docs.rs.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 3 && argv[1] == docs::FLAG {
        return match docs::generate(std::path::Path::new(&argv[2])) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("lunlinkctl: cannot write the documentation: {e}");
                ExitCode::from(exit::FAILURE)
            }
        };
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lunlinkctl: cannot start: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("lunlinkctl: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use lunlink_dbus::values::{AuthMethod, ChapAlgorithm, Digest, Startup};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lunlinkctl").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_to_status_on_the_system_bus() {
        let cli = parse(&[]).expect("parse");
        assert!(cli.verb.is_none());
        assert_eq!(cli.bus, BusChoice::System);
        assert!(!cli.json && !cli.no_legend);
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&[
            "nodes",
            "--json",
            "--bus",
            "unix:path=/tmp/x/bus.sock",
            "--no-legend",
        ])
        .expect("parse");
        assert!(matches!(cli.verb, Some(Verb::Nodes)));
        assert!(cli.json && cli.no_legend);
        assert_eq!(
            cli.bus,
            BusChoice::Address("unix:path=/tmp/x/bus.sock".into())
        );
        assert!(parse(&["--bus", "sytem", "nodes"]).is_err());
    }

    #[test]
    fn discover_and_login() {
        let cli = parse(&[
            "discover",
            "192.0.2.1",
            "--startup",
            "automatic",
            "--auth-file",
            "-",
        ])
        .expect("parse");
        let Some(Verb::Discover(a)) = cli.verb else {
            panic!("discover expected")
        };
        assert_eq!(a.portal, "192.0.2.1");
        assert_eq!(a.startup, Some(Startup::Automatic));
        assert_eq!(a.auth.auth_file.as_deref(), Some(std::path::Path::new("-")));
        assert!(parse(&["discover", "192.0.2.1", "--startup", "boot"]).is_err());
        assert!(parse(&["discover"]).is_err());

        let cli = parse(&["login", "iqn.a", "--portal", "192.0.2.1"]).expect("parse");
        let Some(Verb::Login(a)) = cli.verb else {
            panic!("login expected")
        };
        assert_eq!(a.target.as_deref(), Some("iqn.a"));
        assert!(!a.all);

        let cli = parse(&["login", "--all", "--automatic-only"]).expect("parse");
        let Some(Verb::Login(a)) = cli.verb else {
            panic!("login expected")
        };
        assert!(a.all && a.automatic_only && a.target.is_none());

        assert!(parse(&["login"]).is_err(), "TARGET or --all is required");
        assert!(parse(&["login", "iqn.a", "--all"]).is_err());
        assert!(parse(&["login", "--all", "--auth-file", "f"]).is_err());
        assert!(parse(&["login", "iqn.a", "--automatic-only"]).is_err());
        assert!(parse(&["login", "--automatic-only"]).is_err());
    }

    #[test]
    fn no_secret_on_the_command_line() {
        assert!(parse(&["login", "iqn.a", "--password", "x"]).is_err());
        assert!(parse(&["login", "iqn.a", "--password-prompt"]).is_ok());
    }

    #[test]
    fn logout_forms() {
        let cli =
            parse(&["logout", "/org/lunlink/Initiator1/session/1", "--force"]).expect("parse");
        let Some(Verb::Logout(a)) = cli.verb else {
            panic!("logout expected")
        };
        assert_eq!(
            a.session.as_deref(),
            Some("/org/lunlink/Initiator1/session/1")
        );
        assert!(a.force && !a.all);
        assert!(parse(&["logout", "--all", "--force"]).is_ok());
        assert!(parse(&["logout"]).is_err());
        assert!(parse(&["logout", "iqn.a", "--all"]).is_err());
    }

    #[test]
    fn node_verbs() {
        let cli = parse(&[
            "node",
            "update",
            "iqn.a",
            "--portal",
            "[2001:db8::1]:3260",
            "--auth-method",
            "chap",
            "--chap-algorithms",
            "sha256,md5",
            "--header-digest",
            "crc32c,none",
            "--data-digest",
            "none",
        ])
        .expect("parse");
        let Some(Verb::Node {
            cmd: verbs::node::Cmd::Update(u),
        }) = cli.verb
        else {
            panic!("node update expected")
        };
        assert_eq!(u.select.portal.as_deref(), Some("[2001:db8::1]:3260"));
        assert_eq!(u.settings.auth.auth_method, Some(AuthMethod::Chap));
        assert_eq!(
            u.settings.auth.chap_algorithms,
            Some(vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5])
        );
        assert_eq!(
            u.settings.header_digest,
            Some(vec![Digest::Crc32c, Digest::None])
        );
        assert!(parse(&["node", "update", "iqn.a", "--chap-algorithms", "sha512"]).is_err());

        let cli = parse(&["node", "create", "iqn.a", "192.0.2.1:3260"]).expect("parse");
        assert!(matches!(
            cli.verb,
            Some(Verb::Node {
                cmd: verbs::node::Cmd::Create(_)
            })
        ));
        assert!(
            parse(&["node", "create", "iqn.a"]).is_err(),
            "PORTAL is required"
        );
        assert!(parse(&["node", "show", "iqn.a"]).is_ok());
        assert!(parse(&["node", "delete", "iqn.a", "--portal", "h"]).is_ok());
    }

    #[test]
    fn session_and_lists() {
        assert!(parse(&["session", "show", "1"]).is_ok());
        assert!(parse(&["session", "show"]).is_err());
        for verb in ["nodes", "sessions", "luns", "status"] {
            assert!(parse(&[verb]).is_ok(), "{verb}");
        }
        let cli =
            parse(&["set-default-auth", "discovery", "--auth-file", "/etc/x"]).expect("parse");
        assert!(matches!(cli.verb, Some(Verb::SetDefaultAuth(_))));
        assert!(parse(&["set-default-auth", "everything"]).is_err());
    }

    #[test]
    fn long_help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:"), "{help}");
        assert!(help.contains("   5  authentication failed"), "{help}");
    }
}
