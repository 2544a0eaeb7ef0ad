//! lunlinkd: the lunlink iSCSI initiator daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lunlinkd::config::Config;
use lunlinkd::manager::Manager;
use lunlinkd::{dbus_api, initiator_name};

mod docs;

#[derive(Parser, Debug)]
#[command(name = "lunlinkd", version, about = "lunlink iSCSI initiator daemon")]
struct Args {
    /// Configuration file; a missing file means the built-in defaults.
    #[arg(long, value_name = "PATH", default_value = "/etc/lunlink/lunlink.toml")]
    config: PathBuf,
    /// Where node records and the generated initiator name live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/lunlink")]
    state_dir: PathBuf,
    /// Bus to serve on: system, session, or a D-Bus address such as unix:path=/run/x.sock.
    #[arg(long, value_name = "BUS", default_value = "system")]
    bus: String,
}

/// "YYYY-MM" of today (UTC), for a generated initiator name.
fn year_month() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86400)
        .unwrap_or(0);
    // Civil-from-days (Howard Hinnant's algorithm), valid for any date after 1970.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

/// Longest wait for automatic nodes' first logins before READY.
const AUTO_LOGIN_READY_LIMIT: Duration = Duration::from_secs(45);

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    let _ = sd_notify::notify(false, state);
}

async fn run(args: Args) -> Result<(), String> {
    let config = Config::load(&args.config).map_err(|e| e.to_string())?;
    let bus: lunlink_dbus::BusChoice = args.bus.parse().map_err(|e| format!("--bus {}: {e}", args.bus))?;
    let name = initiator_name::load_or_generate(&args.state_dir, config.initiator.name.as_deref(), &year_month(), rand::random())
        .map_err(|e| e.to_string())?;
    tracing::info!(initiator = %name.name, source = ?name.source, "initiator name");
    let (manager, changes) = Manager::new(config, args.state_dir.clone(), name.name.clone()).await.map_err(|e| e.to_string())?;
    let conn = dbus_api::serve(manager.clone(), &bus)
        .await
        .map_err(|e| format!("cannot serve on the {} bus: {e}", bus.describe()))?;
    tokio::spawn(dbus_api::mirror_changes(manager.clone(), conn.clone(), changes));
    spawn_watchdog();
    // Devices a crashed predecessor left (ublk user recovery): log in again and re-attach.
    manager.spawn_recovery();
    // Automatic nodes get their first login attempt before READY: the unit is ordered before
    // remote-fs-pre.target, so _netdev mounts of their devices find them at boot. Bounded:
    // an unreachable target delays boot by one login at most, and logins go on afterwards.
    let (nodes, mut first_done) = manager.spawn_auto_login();
    if nodes > 0 {
        notify(&[sd_notify::NotifyState::Status("logging in to automatic nodes")]);
        let bound = manager.login_bound(None).min(AUTO_LOGIN_READY_LIMIT);
        let waited = tokio::time::timeout(bound, async {
            for _ in 0..nodes {
                if first_done.recv().await.is_none() {
                    break;
                }
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("automatic logins still running after {bound:?}: ready anyway, they go on");
        }
    }
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving org.lunlink.Initiator1")]);
    tracing::info!(bus = %bus.describe(), "ready");

    wait_for_signal().await;
    notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("logging out")]);
    tracing::info!("stopping: logging out of every session");
    let _ = tokio::time::timeout(Duration::from_secs(30), manager.logout_all()).await;
    drop(conn);
    Ok(())
}

fn spawn_watchdog() {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let period = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            loop {
                notify(&[sd_notify::NotifyState::Watchdog]);
                tokio::time::sleep(period).await;
            }
        });
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn main() -> ExitCode {
    // Package build only (scripts/package): the man pages, see docs.rs.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 3 && argv[1] == docs::FLAG {
        return match docs::generate(std::path::Path::new(&argv[2])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lunlinkd: cannot write the man pages: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lunlinkd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("lunlinkd: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn year_month_is_well_formed() {
        let ym = super::year_month();
        assert_eq!(ym.len(), 7);
        assert!(ym.starts_with("20"));
        assert_eq!(&ym[4..5], "-");
    }
}
