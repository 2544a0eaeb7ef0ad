//! lunlink-bench ends whatever the target does: against targets that stall or lie (a
//! scriptable fake target) it exits within its bound (login + setup + --seconds + --grace +
//! logout, see `--help`) with a clear message, and a target that answers BUSY once is retried
//! as the kernel would.

use std::process::Command;
use std::time::{Duration, Instant};

use lunlink_tests::{run_with_timeout, FakeTarget, Fault, FAKE_TARGET_NAME};

const LOGIN: u64 = 3;
const COMMAND: u64 = 4;
const SECONDS: u64 = 1;
const GRACE: u64 = 2;
/// Logout keeps the engine's default, 15 s.
const BOUND: Duration = Duration::from_secs(LOGIN + COMMAND + SECONDS + GRACE + 15);

/// Runs lunlink-bench against a fake target; exit code, stderr and how long it took.
fn bench(fault: Fault) -> (i32, String, Duration) {
    let t = FakeTarget::start(fault);
    let t0 = Instant::now();
    let limit = BOUND + Duration::from_secs(30);
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_lunlink-bench")).args([
            "--portal",
            t.portal(),
            "--target",
            FAKE_TARGET_NAME,
            "--lun",
            "1",
            "--pattern",
            "randread",
            "--bs",
            "4k",
            "--qd",
            "4",
            "--seconds",
            &SECONDS.to_string(),
            "--grace",
            &GRACE.to_string(),
            "--login-timeout",
            &LOGIN.to_string(),
            "--command-timeout",
            &COMMAND.to_string(),
        ]),
        limit,
    )
    .expect("run lunlink-bench");
    let took = t0.elapsed();
    assert!(!out.timed_out(), "lunlink-bench still ran after {limit:?}: {}", out.describe());
    (out.status.and_then(|s| s.code()).unwrap_or(-1), out.stderr, took)
}

#[track_caller]
fn ends_in_time(fault: Fault) -> (i32, String) {
    let (code, err, took) = bench(fault);
    assert!(took <= BOUND, "{fault:?}: lunlink-bench took {took:?}, more than its bound {BOUND:?}: {err}");
    assert_ne!(code, 0, "{fault:?}: a broken target cannot give a clean run: {err}");
    assert!(err.contains("lunlink-bench:"), "{fault:?}: no message: {err}");
    (code, err)
}

#[test]
fn silent_after_login() {
    let (_, err) = ends_in_time(Fault::SilentAfterLogin);
    assert!(err.contains("TEST UNIT READY"), "{err}");
}

#[test]
fn logout_request_then_silence() {
    ends_in_time(Fault::AsyncLogoutThenSilent);
}

#[test]
fn command_window_never_opens() {
    ends_in_time(Fault::ClosedWindow);
}

#[test]
fn dropping_the_connection_with_time2wait_65535() {
    ends_in_time(Fault::DropWithHugeTime2Wait);
}

#[test]
fn reject_without_header_and_ahs_that_never_comes() {
    // Both break the first connection only; the run then goes on, so it may well succeed:
    // what matters is that it ends in time.
    for fault in [Fault::ShortReject, Fault::AhsNeverComes] {
        let (_, err, took) = bench(fault);
        assert!(took <= BOUND, "{fault:?}: lunlink-bench took {took:?}, more than {BOUND:?}: {err}");
    }
}

#[test]
fn busy_once_is_retried() {
    let (code, err, _) = bench(Fault::BusyOnce);
    assert_eq!(code, 0, "a READ answered BUSY once must be retried, not failed: {err}");
}
