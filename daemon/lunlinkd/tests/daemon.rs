//! lunlinkd end to end: a private dbus-daemon, a real tgtd and the real lunlinkd and
//! lunlinkctl binaries, driven the way an admin or a script would.

use std::time::{Duration, Instant};

use lunlink_tests::{wait_until, Bus, Tgtd};

mod common;
use common::{ctl, ctl_stdin, json, ok, Daemon, Dirs};

const SECRET: &str = "s3cret-alice-12";
const WRONG: &str = "wrong-secret-99";

#[test]
fn discover_persist_restart_login_chap_logout() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:plain").unwrap();
    tgt.add_lun_file(1, 1, 64 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    tgt.add_target(2, "iqn.2024-01.test:chap").unwrap();
    tgt.add_lun_file(2, 1, 16 << 20).unwrap();
    tgt.bind_all(2).unwrap();
    tgt.add_account("alice", SECRET).unwrap();
    tgt.bind_account(2, "alice").unwrap();

    let bus = Bus::start();
    let dirs = Dirs::new();
    let (state, log) = (dirs.state.clone(), dirs.log.clone());
    let d = Daemon::start(&bus, &dirs);

    // Discovery creates node records on disk.
    let found = json(&ctl(&bus, &["--json", "discover", &tgt.portal()]));
    let text = found.to_string();
    assert!(text.contains("iqn.2024-01.test:plain") && text.contains("iqn.2024-01.test:chap"), "{text}");
    let files = std::fs::read_dir(state.join("nodes")).unwrap().count();
    assert_eq!(files, 2, "one node record per discovered portal");

    // The nodes survive a restart of the daemon.
    d.stop();
    let d = Daemon::start(&bus, &dirs);
    let nodes = json(&ctl(&bus, &["--json", "nodes"])).to_string();
    assert!(nodes.contains("iqn.2024-01.test:plain") && nodes.contains("iqn.2024-01.test:chap"), "{nodes}");

    // Login without auth; the LUN shows up with its size.
    ok(&ctl(&bus, &["login", "iqn.2024-01.test:plain"]));
    let luns = json(&ctl(&bus, &["--json", "luns"])).to_string();
    assert!(luns.contains("67108864"), "64 MiB LUN expected: {luns}");
    // A second login of the same node returns the same session.
    let a = ok(&ctl(&bus, &["login", "iqn.2024-01.test:plain"]));
    let b = ok(&ctl(&bus, &["login", "iqn.2024-01.test:plain"]));
    assert_eq!(a, b);

    // Wrong CHAP secret: an authentication error with its own exit code and a clear line.
    let o = ctl_stdin(&bus, &["login", "iqn.2024-01.test:chap", "--auth-file", "-"], &format!("username=alice\npassword={WRONG}\n"));
    assert_eq!(o.status.code(), Some(5), "exit code for authentication failures");
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(err.contains("authentication"), "{err}");

    // Store the right secret on the node, then log in.
    let o = ctl_stdin(&bus, &["node", "update", "iqn.2024-01.test:chap", "--auth-file", "-"], &format!("username=alice\npassword={SECRET}\n"));
    ok(&o);
    ok(&ctl(&bus, &["login", "iqn.2024-01.test:chap"]));
    let sessions = json(&ctl(&bus, &["--json", "sessions"])).to_string();
    assert_eq!(sessions.matches("logged-in").count(), 2, "{sessions}");

    // The secret never shows in properties, --json output or logs.
    for args in [vec!["--json", "nodes"], vec!["--json", "sessions"], vec!["--json", "luns"], vec!["--json", "status"]] {
        let out = ok(&ctl(&bus, &args));
        assert!(!out.contains(SECRET) && !out.contains(WRONG), "secret leaked by {args:?}");
    }
    let node_show = ok(&ctl(&bus, &["--json", "node", "show", "iqn.2024-01.test:chap"]));
    assert!(node_show.contains("alice") && !node_show.contains(SECRET), "{node_show}");

    // Logout of everything.
    ok(&ctl(&bus, &["logout", "--all"]));
    let sessions = json(&ctl(&bus, &["--json", "sessions"])).to_string();
    assert!(!sessions.contains("logged-in"), "{sessions}");
    d.stop();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains(SECRET) && !log_text.contains(WRONG), "secret leaked into the daemon log");
    assert!(log_text.contains("logged in"), "the log tells what happened");
}

#[test]
fn corrupt_node_record_is_reported_and_skipped() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:one").unwrap();
    tgt.add_lun_file(1, 1, 1 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let (state, log) = (dirs.state.clone(), dirs.log.clone());
    let d = Daemon::start(&bus, &dirs);
    ok(&ctl(&bus, &["discover", &tgt.portal()]));
    d.stop();
    let bad = state.join("nodes").join("garbage.toml");
    std::fs::write(&bad, "this is = = not toml [").unwrap();
    let d = Daemon::start(&bus, &dirs);
    let nodes = json(&ctl(&bus, &["--json", "nodes"])).to_string();
    assert!(nodes.contains("iqn.2024-01.test:one"), "the good record still loads: {nodes}");
    d.stop();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("garbage.toml"), "the damaged record is named in the log");
}

#[test]
fn automatic_node_logs_in_once_its_target_appears() {
    let bus = Bus::start();
    let dirs = Dirs::new();
    let mut tgt = Tgtd::start();
    let portal = tgt.portal();
    let d = Daemon::start(&bus, &dirs);
    // A static automatic node for a target that does not exist yet.
    ok(&ctl(&bus, &["node", "create", "iqn.2024-01.test:later", &portal, "--startup", "automatic"]));
    d.stop();
    tgt.kill();
    let d = Daemon::start(&bus, &dirs);
    // The daemon is ready although the target is down; now the target comes.
    tgt.restart();
    tgt.add_target(1, "iqn.2024-01.test:later").unwrap();
    tgt.add_lun_file(1, 1, 1 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    wait_until(Instant::now() + Duration::from_secs(60), "the automatic node to log in", || {
        ctl(&bus, &["--json", "sessions"]).stdout.windows(9).any(|w| w == b"logged-in")
    });
    d.stop();
}
