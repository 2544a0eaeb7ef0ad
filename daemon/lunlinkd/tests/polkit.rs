//! Who may do what, on a private bus: every method that changes state asks polkit for its
//! action with the caller's bus name as subject. polkit itself is not under test here, so a
//! stand-in Authority serves org.freedesktop.PolicyKit1 and records each check (the system VM
//! runs the real polkitd). Non-root callers run as user nobody (setpriv).

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lunlink_tests::{run_with_timeout, tool_path, Bus, TargetSpec, Tgtd};
use zbus::zvariant::OwnedValue;

const IQN: &str = "iqn.2024-01.test:polkit";
const IQN2: &str = "iqn.2024-01.test:polkit2";
const NOBODY: &str = "65534";

#[derive(Debug, Clone)]
struct Check {
    action: String,
    subject_kind: String,
    /// The uid polkit would find behind the subject's bus name, asked of the bus.
    uid: u32,
    interactive: bool,
    details: HashMap<String, String>,
}

struct Authority {
    allow: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Check>>>,
}

#[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
impl Authority {
    async fn check_authorization(
        &self,
        subject: (String, HashMap<String, OwnedValue>),
        action_id: String,
        details: HashMap<String, String>,
        flags: u32,
        _cancellation_id: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> (bool, bool, HashMap<String, String>) {
        let name = subject.1.get("name").and_then(|v| <&str>::try_from(v).ok()).unwrap_or_default().to_owned();
        let uid = match zbus::names::UniqueName::try_from(name.as_str()) {
            Ok(n) => zbus::fdo::DBusProxy::new(conn)
                .await
                .unwrap()
                .get_connection_unix_user(zbus::names::BusName::Unique(n))
                .await
                .unwrap_or(u32::MAX),
            Err(_) => u32::MAX,
        };
        self.log.lock().unwrap().push(Check { action: action_id, subject_kind: subject.0, uid, interactive: flags & 1 == 1, details });
        let allow = self.allow.load(Ordering::SeqCst);
        (allow, !allow, HashMap::new())
    }
}

/// The stand-in, serving until dropped.
struct StandIn {
    _conn: zbus::Connection,
    allow: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Check>>>,
}

impl StandIn {
    async fn start(bus: &Bus) -> StandIn {
        let allow = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let conn = zbus::connection::Builder::address(bus.address())
            .unwrap()
            .serve_at("/org/freedesktop/PolicyKit1/Authority", Authority { allow: allow.clone(), log: log.clone() })
            .unwrap()
            .name("org.freedesktop.PolicyKit1")
            .unwrap()
            .build()
            .await
            .unwrap();
        StandIn { _conn: conn, allow, log }
    }

    fn take(&self) -> Vec<Check> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// Runs a command as user nobody, or as root.
fn run_as(uid: Option<&str>, program: &std::path::Path, args: &[&str]) -> Output {
    let mut c = match uid {
        Some(u) => {
            let mut c = Command::new(tool_path("setpriv"));
            c.args([&format!("--reuid={u}"), &format!("--regid={u}"), "--clear-groups"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    c.args(args);
    let out = run_with_timeout(&mut c, CTL_LIMIT).expect("run");
    let status = out.status.unwrap_or_else(|| panic!("{args:?} did not finish: {}", out.describe()));
    Output { status, stdout: out.stdout.into_bytes(), stderr: out.stderr.into_bytes() }
}

fn ctl_as(bus: &Bus, uid: Option<&str>, args: &[&str]) -> Output {
    let mut a = vec!["--bus", bus.address(), "--no-ask-password"];
    a.extend_from_slice(args);
    run_as(uid, &ctl_path(), &a)
}

fn busctl_as(bus: &Bus, uid: Option<&str>, path: &str, iface: &str, method: &str, sig_and_args: &[&str]) -> Output {
    let addr = format!("--address={}", bus.address());
    let mut a = vec![addr.as_str(), "call", "org.lunlink.Initiator1", path, iface, method];
    a.extend_from_slice(sig_and_args);
    run_as(uid, &tool_path("busctl"), &a)
}

#[track_caller]
fn refused(o: &Output, action: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "allowed although polkit said no: {err}");
    assert!(err.contains("not authorized") && err.contains(action), "the refusal names {action}: {err}");
}

#[test]
fn every_change_asks_polkit_for_its_action() {
    let tgt = Tgtd::start_with(&[TargetSpec::new(1, IQN).file_lun(1, 8 << 20), TargetSpec::new(2, IQN2).file_lun(1, 8 << 20)]);
    let bus = Bus::start();
    std::fs::set_permissions(bus.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dirs = Dirs::new();
    let _d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let standin = run(&rt, StandIn::start(&bus));

    // Root needs no check: it sets things up.
    let o = ctl_as(&bus, None, &["discover", &tgt.portal()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ctl_as(&bus, None, &["login", IQN]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(standin.take().is_empty(), "root was checked; polkitd allows uid 0 at once, and so does lunlinkd");
    let snap = json(&ctl(&bus, &["--json", "nodes"]));
    let node_of = |t: &str| snap.as_array().unwrap().iter().find(|n| n["target"] == t).unwrap()["path"].as_str().unwrap().to_owned();
    let node1 = node_of(IQN);
    let session = json(&ctl(&bus, &["--json", "sessions"]))[0]["path"].as_str().unwrap().to_owned();
    let nodes_dir = dirs.state.join("nodes");
    let records = || std::fs::read_dir(&nodes_dir).map(|d| d.count()).unwrap_or(0);
    let records_before = records();

    // Denied: every mutating method asks for its own action, as the caller (uid 65534, by
    // its bus name), and changes nothing.
    let m = "/org/lunlink/Initiator1";
    let mi = "org.lunlink.Initiator1.Manager";
    let portal = tgt.portal();
    let node2 = node_of(IQN2);
    type Call<'a> = Box<dyn Fn() -> Output + 'a>;
    // (action, whether the caller is lunlinkctl --no-ask-password, the call)
    let cases: Vec<(&str, bool, Call<'_>)> = vec![
        ("org.lunlink.initiator1.discover", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["discover", &portal]))),
        ("org.lunlink.initiator1.login", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["login", IQN2]))),
        ("org.lunlink.initiator1.login", false, Box::new(|| busctl_as(&bus, Some(NOBODY), m, mi, "LoginAll", &["a{sv}", "0"]))),
        ("org.lunlink.initiator1.login", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["login", "--all"]))),
        ("org.lunlink.initiator1.login", false, Box::new(|| busctl_as(&bus, Some(NOBODY), &node2, "org.lunlink.Initiator1.Node", "Login", &["a{sv}", "0"]))),
        ("org.lunlink.initiator1.login", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["session", "rescan", IQN]))),
        ("org.lunlink.initiator1.logout", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["logout", IQN]))),
        ("org.lunlink.initiator1.logout", false, Box::new(|| busctl_as(&bus, Some(NOBODY), &session, "org.lunlink.Initiator1.Session", "Logout", &["a{sv}", "0"]))),
        ("org.lunlink.initiator1.manage-nodes", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["node", "create", "iqn.2024-01.test:new", "127.0.0.1:3260"]))),
        ("org.lunlink.initiator1.manage-nodes", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["node", "update", IQN, "--startup", "automatic"]))),
        ("org.lunlink.initiator1.manage-nodes", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["node", "delete", IQN2]))),
        ("org.lunlink.initiator1.manage-auth", true, Box::new(|| ctl_as(&bus, Some(NOBODY), &["set-default-auth", "session", "--auth-method", "none"]))),
    ];
    for (action, by_ctl, call) in &cases {
        let o = call();
        refused(&o, action);
        if *by_ctl {
            // lunlinkctl maps the refusal to exit 9.
            assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
        }
        let checks = standin.take();
        assert_eq!(checks.len(), 1, "{action}: one check per call: {checks:?}");
        let c = &checks[0];
        assert_eq!(c.action, *action);
        assert_eq!(c.subject_kind, "system-bus-name", "the subject is the caller's bus name");
        assert_eq!(c.uid, 65534, "the subject is the caller itself");
        if *by_ctl {
            assert!(!c.interactive, "--no-ask-password: no interactive authentication");
        }
    }
    // Details name the target and portal where there is one.
    let o = ctl_as(&bus, Some(NOBODY), &["login", IQN2]);
    refused(&o, "org.lunlink.initiator1.login");
    let c = standin.take().pop().unwrap();
    assert_eq!(c.details.get("target").map(String::as_str), Some(IQN2), "{c:?}");
    // Nothing changed: no node record, the session still there, the node still manual.
    assert_eq!(records(), records_before, "a refused call wrote a node record");
    let sessions = json(&ctl(&bus, &["--json", "sessions"]));
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    let nodes = json(&ctl(&bus, &["--json", "nodes"]));
    assert!(nodes.as_array().unwrap().iter().all(|n| n["startup"] == "manual"), "{nodes}");
    assert_eq!(json(&ctl(&bus, &["--json", "status"]))["default_auth_method"], "none");
    // Reads stay open to everyone.
    for verb in [&["status"][..], &["nodes"], &["sessions"], &["luns"], &["--json", "nodes"]] {
        let o = ctl_as(&bus, Some(NOBODY), verb);
        assert!(o.status.success(), "{verb:?} as nobody: {}", stderr(&o));
    }
    assert!(standin.take().is_empty(), "reads need no check");

    // Allowed: the same caller gets its change, interactive when it lets polkit ask.
    standin.allow.store(true, Ordering::SeqCst);
    let o = run_as(Some(NOBODY), &ctl_path(), &["--bus", bus.address(), "node", "update", IQN, "--startup", "automatic"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = standin.take().pop().unwrap();
    assert!(c.interactive, "lunlinkctl lets polkit ask unless --no-ask-password");
    let nodes = json(&ctl(&bus, &["--json", "nodes"]));
    assert!(nodes.as_array().unwrap().iter().any(|n| n["target"] == IQN && n["startup"] == "automatic"), "{nodes}");
    let _ = node1;

    // Without polkitd: root still works, others are refused and told why.
    drop(standin);
    let gone = lunlink_tests::poll_until(Instant::now() + Duration::from_secs(10), || {
        let o = ctl_as(&bus, Some(NOBODY), &["node", "update", IQN, "--startup", "manual"]);
        String::from_utf8_lossy(&o.stderr).contains("polkit is not available")
    });
    assert!(gone, "a caller without polkitd was not refused with the reason");
    let o = ctl_as(&bus, Some(NOBODY), &["node", "update", IQN, "--startup", "manual"]);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    let o = ctl_as(&bus, None, &["node", "update", IQN, "--startup", "manual"]);
    assert!(o.status.success(), "root without polkitd: {}", stderr(&o));
    assert!(dirs.log_text().contains("polkitd is not running"), "the log says why others are refused");
}
