//! Every call ends: the real lunlinkd against targets that stall or lie (a scriptable fake
//! target, since no real target misbehaves on purpose).
//!
//! Each case asserts that the call returns within the bound dbus/API.md documents for it
//! (derived from the configured timeouts), with the expected named error or result, and that
//! the daemon answers other calls meanwhile.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use lunlink_tests::{poll_until, Bus, FakeTarget, Fault, FAKE_TARGET_NAME};

/// Short timeouts, so that every bound is a few seconds.
const CONFIG: &str = "\
[timeouts]
login = 3
logout = 2
noop_interval = 1
noop_timeout = 1
command = 4
replacement = 30
";
const LOGIN: u64 = 3;
const COMMAND: u64 = 4;
/// dbus/API.md: Login returns within login + command timeout, plus 5 s of slack.
const LOGIN_BOUND: Duration = Duration::from_secs(LOGIN + COMMAND + 5);

struct Case {
    bus: Bus,
    dirs: Dirs,
    _daemon: Daemon,
    target: FakeTarget,
}

impl Case {
    fn log(&self) -> String {
        self.dirs.log_text()
    }
}

fn start(fault: Fault) -> Case {
    let target = FakeTarget::start(fault);
    let bus = Bus::start();
    let dirs = Dirs::new();
    let cfg = dirs.config(CONFIG);
    let daemon = Daemon::start_with(&bus, &dirs, Some(&cfg));
    let o = ctl(&bus, &["node", "create", FAKE_TARGET_NAME, target.portal()]);
    assert!(o.status.success(), "node create: {}", stderr(&o));
    Case { bus, dirs, _daemon: daemon, target }
}

/// Runs `lunlinkctl login` and, while it runs, checks once a second that the daemon answers
/// `status` within 2 s. Returns the login's output and how long it took.
fn login_while_probing(c: &Case) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(ctl_path())
        .args(["--bus", c.bus.address(), "login", FAKE_TARGET_NAME])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lunlinkctl login");
    let limit = LOGIN_BOUND + Duration::from_secs(30);
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        assert!(t0.elapsed() < limit, "lunlinkctl login still running after {limit:?}");
        let p0 = Instant::now();
        let o = ctl(&c.bus, &["status"]);
        assert!(o.status.success(), "status failed during the login: {}", stderr(&o));
        assert!(p0.elapsed() < Duration::from_secs(2), "status took {:?} during the login", p0.elapsed());
        poll_until(Instant::now() + Duration::from_secs(1), || child.try_wait().ok().flatten().is_some());
    }
    let took = t0.elapsed();
    let o = child.wait_with_output().unwrap();
    (o, took)
}

#[track_caller]
fn assert_within(took: Duration, bound: Duration, o: &Output) {
    assert!(
        took <= bound,
        "the call took {took:?}, more than its bound {bound:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[track_caller]
fn assert_timeout_error(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "Timeout is exit 7: {err}");
    assert!(err.contains("did not answer the LUN scan"), "{err}");
}

#[test]
fn silent_after_login() {
    let c = start(Fault::SilentAfterLogin);
    let (o, took) = login_while_probing(&c);
    assert_within(took, LOGIN_BOUND, &o);
    assert_timeout_error(&o);
    // The session stays and says it is reconnecting (the pings go unanswered).
    let ok = poll_until(Instant::now() + Duration::from_secs(10), || {
        json(&ctl(&c.bus, &["--json", "sessions"]))[0]["state"] != "logged-in"
    });
    assert!(ok, "the session never left logged-in");
}

#[test]
fn async_logout_request_then_silence() {
    let c = start(Fault::AsyncLogoutThenSilent);
    let (o, took) = login_while_probing(&c);
    assert_within(took, LOGIN_BOUND, &o);
    assert_timeout_error(&o);
}

#[test]
fn command_window_never_opens() {
    let c = start(Fault::ClosedWindow);
    let (o, took) = login_while_probing(&c);
    assert_within(took, LOGIN_BOUND, &o);
    assert_timeout_error(&o);
    // The connection was dropped for it and the session reinstated (a second connection).
    let ok = poll_until(Instant::now() + Duration::from_secs(15), || c.target.accepted().len() >= 2);
    assert!(ok, "the closed window never led to a new connection");
}

#[test]
fn dropping_the_connection_with_time2wait_65535() {
    let c = start(Fault::DropWithHugeTime2Wait);
    let (o, took) = login_while_probing(&c);
    assert_within(took, LOGIN_BOUND, &o);
    assert_timeout_error(&o);
    let s = json(&ctl(&c.bus, &["--json", "sessions"]));
    assert_eq!(s[0]["state"], "reconnecting", "{s}");
}

#[test]
fn reject_without_the_rejected_header_reinstates_the_session() {
    let c = start(Fault::ShortReject);
    let (o, took) = login_while_probing(&c);
    assert_within(took, LOGIN_BOUND, &o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(c.target.accepted().len() >= 2, "the connection was not dropped for the bad Reject");
    let luns = json(&ctl(&c.bus, &["--json", "luns"]));
    assert_eq!(luns[0]["lun"], 1, "{luns}");
}

#[test]
fn ahs_that_never_comes() {
    let c = start(Fault::AhsNeverComes);
    let (o, took) = login_while_probing(&c);
    assert_within(took, LOGIN_BOUND, &o);
    // The unanswered ping drops the stuck connection after 2 s, the relogin waits Time2Wait
    // (2 s): the scan may finish just inside the login's bound or just after it, in the
    // background. Either way the call ended in time and the LUN arrives.
    if !o.status.success() {
        assert_timeout_error(&o);
    }
    let ok = poll_until(Instant::now() + Duration::from_secs(15), || {
        json(&ctl(&c.bus, &["--json", "luns"]))[0]["lun"] == 1
    });
    assert!(ok, "the LUN never appeared after the stuck connection");
    assert!(c.target.accepted().len() >= 2, "the stuck connection was never replaced");
}

#[test]
fn chap_required_target_closing_the_connection_is_an_authentication_error() {
    let c = start(Fault::CloseOnNoAuth);
    let (o, took) = login_while_probing(&c);
    assert_within(took, Duration::from_secs(LOGIN + 5), &o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "authentication failed is exit 5: {err}");
    assert!(err.contains("requires CHAP"), "{err}");
}

#[test]
fn a_fresh_session_has_no_errors() {
    let c = start(Fault::None);
    let (o, _) = login_while_probing(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&ctl(&c.bus, &["--json", "sessions"]));
    assert_eq!(s[0]["errors"], 0, "{s}");
}

#[test]
fn try_again_at_relogin_is_retried_soon() {
    let c = start(Fault::TryAgainOnRelogin);
    let (o, _) = login_while_probing(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Connection 1 closes after 1 s; the relogin (2) is refused with 0x0301; the next try (3)
    // comes within a second, not after a doubled Time2Wait.
    let ok = poll_until(Instant::now() + Duration::from_secs(20), || c.target.accepted().len() >= 3);
    let a = c.target.accepted();
    assert!(ok, "no third connection: {} accepted", a.len());
    let gap = a[2] - a[1];
    assert!(gap < Duration::from_millis(1500), "the retry after 0x0301 came {gap:?} later");
}

#[test]
fn a_lun_number_reused_for_another_lu_is_never_merged_into_the_old_one() {
    let c = start(Fault::IdentityChangesAtRelogin);
    let (o, _) = login_while_probing(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wwid = |j: &serde_json::Value| j[0]["wwid"].as_str().unwrap_or_default().to_owned();
    // The target closes the connection 1 s after login; the relogin finds LUN 1 answering
    // for another LU: the old LU (…01) loses its path and goes, a new LU (…02) comes.
    let moved = poll_until(Instant::now() + Duration::from_secs(20), || {
        let l = json(&ctl(&c.bus, &["--json", "lus"]));
        l.as_array().is_some_and(|a| a.len() == 1) && wwid(&l).ends_with("02")
    });
    let l = json(&ctl(&c.bus, &["--json", "lus"]));
    assert!(moved, "the reused LUN number did not become a new LU: {l}");
    let log = c.log();
    assert!(
        log.contains("answers for another logical unit") && log.contains("before=naa.6001405fa4e000000000000000000001"),
        "the daemon says which LU the LUN number left:\n{log}"
    );
    let luns = json(&ctl(&c.bus, &["--json", "luns"]));
    assert_eq!(luns.as_array().unwrap().len(), 1, "{luns}");
    assert!(luns[0]["wwid"].as_str().unwrap().ends_with("02"), "{luns}");
}
