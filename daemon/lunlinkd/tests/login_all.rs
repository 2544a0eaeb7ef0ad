//! LoginAll against real tgtd: logins run in parallel, so one reachable node, one with wrong
//! CHAP credentials and unreachable portals (refused, and silent) take one login timeout
//! together, not one each; every node's outcome is reported, and `lunlinkctl login --all`
//! names each failure and exits 11.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use lunlink_tests::{free_loopback_port, Bus, TargetSpec, Tgtd};

const PLAIN: &str = "iqn.2024-01.test:all-plain";
const CHAP: &str = "iqn.2024-01.test:all-chap";
const GONE: &str = "iqn.2024-01.test:all-refused";
const SILENT: &str = "iqn.2024-01.test:all-silent";
const SILENT2: &str = "iqn.2024-01.test:all-silent2";
const LOGIN: u64 = 5;

#[test]
fn login_all_runs_in_parallel_and_reports_every_node() {
    let tgt = Tgtd::start_with(&[
        TargetSpec::new(1, PLAIN).file_lun(1, 8 << 20),
        TargetSpec::new(2, CHAP).file_lun(1, 8 << 20).chap("alluser", "the-right-secret"),
    ]);
    // A portal where nothing listens (refused at once) and two that accept the connection
    // but never answer the login (each costs a whole login timeout).
    let refused = format!("127.0.0.1:{}", free_loopback_port());
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let cfg = dirs.config(&format!("[timeouts]\nlogin = {LOGIN}\n"));
    let _d = Daemon::start_with(&bus, &dirs, Some(&cfg));
    let create = |args: &[&str], stdin: &str| {
        let o = ctl_stdin(&bus, args, stdin);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    create(&["node", "create", PLAIN, &tgt.portal()], "");
    create(
        &["node", "create", CHAP, &tgt.portal(), "--auth-file", "-"],
        "username=alluser\npassword=a-wrong-secret\n",
    );
    create(&["node", "create", GONE, &refused], "");
    create(&["node", "create", SILENT, &silent.local_addr().unwrap().to_string()], "");
    create(&["node", "create", SILENT2, &silent2.local_addr().unwrap().to_string()], "");

    let t0 = Instant::now();
    let o = ctl(&bus, &["--json", "login", "--all"]);
    let took = t0.elapsed();
    let err = stderr(&o);
    // Two silent portals, one login timeout each: one after the other would take 2 x LOGIN.
    assert!(
        took < Duration::from_secs(LOGIN) + Duration::from_secs(LOGIN) / 2,
        "login --all took {took:?}; in parallel it takes one login timeout ({LOGIN} s): {err}"
    );
    assert_eq!(o.status.code(), Some(11), "some logins failed: exit 11: {err}");
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let row = |t: &str| rows.as_array().unwrap().iter().find(|r| r["target"] == t).unwrap_or_else(|| panic!("{t} missing: {rows}")).clone();
    assert!(row(PLAIN)["session"].as_str().is_some_and(|s| s.contains("/session/")), "{rows}");
    assert_eq!(row(CHAP)["error"], "org.lunlink.Initiator1.Error.AuthenticationFailed", "{rows}");
    assert_eq!(row(GONE)["error"], "org.lunlink.Initiator1.Error.ConnectionFailed", "{rows}");
    assert_eq!(row(SILENT)["error"], "org.lunlink.Initiator1.Error.Timeout", "{rows}");
    // One line per failed node on stderr, naming it, and the count.
    for t in [CHAP, GONE, SILENT, SILENT2] {
        assert!(err.lines().any(|l| l.starts_with("lunlinkctl: ") && l.contains(t)), "no line for {t}: {err}");
    }
    assert!(err.contains("4 of 5 logins failed"), "{err}");
    assert!(!err.lines().any(|l| l.contains(PLAIN)), "{err}");
    // The plain node is logged in, with its LUN, whose table row names the target.
    let luns = ok(&ctl(&bus, &["luns"]));
    assert!(luns.lines().any(|l| l.starts_with(PLAIN)), "{luns}");
}
