//! lunlink-bench against a real tgtd started by each test: short runs that check the figures
//! are there, that --verify passes on a real LU and fails where data is not kept, and that
//! failed and unanswered IOs are counted instead of ending or hanging the run.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lunlink_tests::{run_with_timeout, wait_until, TargetSpec, Tgtd};
use serde_json::Value;

const NULL_IQN: &str = "iqn.2024-01.test:bench-null";
const FILE_IQN: &str = "iqn.2024-01.test:bench-file";
/// Wall-clock limit for one short run (login, 1-2 s of IO, verify, logout) on a loaded box.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lunlink-bench"))
}

fn args(t: &Tgtd, iqn: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> =
        ["--portal", &t.portal(), "--target", iqn, "--lun", "1", "--json"].iter().map(|s| s.to_string()).collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs lunlink-bench to completion and returns its exit code and JSON report.
fn run(t: &Tgtd, iqn: &str, extra: &[&str]) -> (i32, Value, String) {
    let out = run_with_timeout(bench().args(args(t, iqn, extra)), RUN_LIMIT).expect("run lunlink-bench");
    assert!(!out.timed_out(), "lunlink-bench did not finish within {RUN_LIMIT:?}: {}", out.describe());
    let code = out.status.and_then(|s| s.code()).unwrap_or(-1);
    let json: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}\n{}", out.describe(), t.log_tail()));
    (code, json, out.stderr)
}

fn num(j: &Value, key: &str) -> f64 {
    j[key].as_f64().unwrap_or_else(|| panic!("no number '{key}' in {j}"))
}

#[test]
fn randread_on_a_null_lu_reports_every_figure() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, NULL_IQN).null_lun(1)]);
    let (code, j, err) = run(&t, NULL_IQN, &["--pattern", "randread", "--bs", "4k", "--qd", "4", "--seconds", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(num(&j, "ios") > 0.0, "{j}");
    assert_eq!(num(&j, "errors"), 0.0, "{j}\n{err}");
    for key in ["iops", "mbps", "lat_p50_us", "lat_p99_us", "cpu_us_per_io"] {
        assert!(num(&j, key) > 0.0, "{key} in {j}");
    }
    assert!(num(&j, "lat_p50_us") <= num(&j, "lat_p99_us"), "{j}");
    assert!(num(&j, "cpu_user_s") + num(&j, "cpu_sys_s") > 0.0, "{j}");
    // IOPS and bytes agree with the IO count and size.
    let secs = num(&j, "seconds");
    assert!((0.9..5.0).contains(&secs), "{j}");
    assert!((num(&j, "iops") * secs - num(&j, "ios")).abs() < 1.0, "{j}");
    assert_eq!(num(&j, "bytes"), num(&j, "ios") * 4096.0, "{j}");
    // The data path allocates nothing per IO (a stray allocation now and then, e.g. a timer
    // wheel level, is tolerated; one per IO is not).
    assert!(num(&j, "ios_mid_run") > 0.0, "{j}");
    assert!(num(&j, "allocs_mid_run") * 100.0 < num(&j, "ios_mid_run"), "allocations in the data path: {j}");
}

#[test]
fn sequential_1m_reads_on_two_runtime_threads() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, NULL_IQN).null_lun(1)]);
    let (code, j, err) =
        run(&t, NULL_IQN, &["--pattern", "read", "--bs", "1m", "--qd", "4", "--seconds", "1", "--threads", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(num(&j, "ios") > 0.0 && num(&j, "errors") == 0.0, "{j}\n{err}");
    assert_eq!(num(&j, "threads"), 2.0);
    assert!(num(&j, "cpu_ms_per_mib") > 0.0, "{j}");
}

#[test]
fn verified_writes_read_back_intact_from_a_file_lu_with_chap() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, FILE_IQN).file_lun(1, 64 << 20).chap("benchuser", "benchsecret12")]);
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    std::fs::write(&auth, "username=benchuser\npassword=benchsecret12\n").unwrap();
    let auth = auth.to_str().unwrap();
    for pattern in ["randwrite", "write"] {
        let (code, j, err) =
            run(&t, FILE_IQN, &["--pattern", pattern, "--qd", "8", "--seconds", "1", "--verify", "--auth-file", auth]);
        assert_eq!(code, 0, "{pattern}: {err}");
        assert!(num(&j, "ios") > 0.0, "{j}");
        assert_eq!(num(&j, "errors"), 0.0, "{j}\n{err}");
        let v = &j["verify"];
        assert!(num(v, "checked") > 0.0, "{pattern}: nothing read back: {j}");
        assert!(num(v, "checked") <= num(&j, "ios"), "{j}");
        assert_eq!(num(v, "mismatches"), 0.0, "{j}\n{err}");
    }
    // Without credentials the login is refused, with the reason, and no report.
    let out =
        run_with_timeout(bench().args(args(&t, FILE_IQN, &["--pattern", "randread", "--seconds", "1"])), RUN_LIMIT)
            .unwrap();
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("cannot log in"), "{}", out.describe());
    assert!(!out.stderr.contains("benchsecret12"));
}

#[test]
fn verify_catches_a_lu_that_keeps_nothing() {
    // A null LU keeps no data: a read returns whatever was in tgtd's buffer, now and then the
    // very block written last if tgtd reuses that buffer, mostly something else.
    let t = Tgtd::start_with(&[TargetSpec::new(1, NULL_IQN).null_lun(1)]);
    let (code, j, err) = run(&t, NULL_IQN, &["--pattern", "randwrite", "--qd", "4", "--seconds", "1", "--verify"]);
    assert_eq!(code, 3, "mismatches must fail the run: {j}\n{err}");
    let v = &j["verify"];
    assert!(num(v, "checked") > 0.0, "{j}");
    assert!(num(v, "mismatches") > num(v, "checked") / 2.0, "{j}");
    assert!(num(&j, "errors") >= num(v, "mismatches"), "{j}");
    assert!(err.contains("verify: LBA"), "mismatches are named: {err}");
}

/// A bench run in the background, its stderr lines forwarded as they come.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Background {
    fn start(t: &Tgtd, iqn: &str, extra: &[&str]) -> Background {
        let mut child = bench()
            .args(args(t, iqn, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Background { child, lines, seen: String::new() }
    }

    /// Waits for a stderr line containing `what`.
    fn wait_for(&mut self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.seen.contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen += &l;
                    self.seen.push('\n');
                }
                Err(_) => {
                    panic!("lunlink-bench did not print {what:?} within {limit:?}; stderr so far:\n{}", self.seen)
                }
            }
        }
    }

    fn finish(mut self, limit: Duration) -> (i32, Value, String) {
        let deadline = Instant::now() + limit;
        let mut status = None;
        wait_until(deadline, "lunlink-bench to finish", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen += &l;
            self.seen.push('\n');
        }
        let j = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("no JSON ({e}): {out}\n{}", self.seen));
        (status.and_then(|s| s.code()).unwrap_or(-1), j, std::mem::take(&mut self.seen))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn failing_ios_are_counted_and_the_run_goes_on() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, FILE_IQN).file_lun(1, 64 << 20)]);
    let readonly = |on: &str| {
        t.tgtadm(&[
            "--op",
            "update",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "1",
            "--params",
            &format!("readonly={on}"),
        ])
        .unwrap();
    };
    let mut b = Background::start(&t, FILE_IQN, &["--pattern", "randwrite", "--qd", "4", "--seconds", "4", "--verify"]);
    b.wait_for("lunlink-bench: running", RUN_LIMIT);
    // A write-protected LU answers DATA PROTECT: every write fails until it is writable again.
    readonly("1");
    b.wait_for("failed: ", Duration::from_secs(30));
    readonly("0");
    b.wait_for("IOs succeed again", Duration::from_secs(30));
    let (code, j, err) = b.finish(RUN_LIMIT);
    assert_eq!(code, 3, "{j}\n{err}");
    assert!(num(&j, "io_errors") > 0.0, "{j}");
    assert!(num(&j, "ios") > 0.0, "{j}");
    assert!(err.contains("DATA PROTECT"), "the failure says why: {err}");
    // Blocks whose last write failed are not checked; every other one must read back intact.
    let v = &j["verify"];
    assert_eq!(num(v, "mismatches"), 0.0, "{j}\n{err}");
    assert!(num(v, "checked") > 0.0, "{j}");
}

#[test]
fn a_dropped_connection_does_not_end_or_hang_the_run() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, NULL_IQN).null_lun(1)]);
    let mut b =
        Background::start(&t, NULL_IQN, &["--pattern", "randread", "--qd", "4", "--seconds", "3", "--grace", "2"]);
    b.wait_for("lunlink-bench: running", RUN_LIMIT);
    let conns = t.show_conns(1).unwrap();
    assert_eq!(conns.len(), 1, "{conns:?}");
    t.delete_conn(1, conns[0].0, conns[0].1).unwrap();
    // Whether the engine reconnects or fails the IOs, the run ends after 3 s plus at most the
    // 2 s grace, and its report agrees with its exit code.
    let started = Instant::now();
    let (code, j, err) = b.finish(RUN_LIMIT);
    assert!(started.elapsed() < Duration::from_secs(15), "the run must end on time");
    assert!(num(&j, "seconds") < 3.5, "{j}");
    assert_eq!(code == 3, num(&j, "errors") > 0.0, "exit {code}: {j}\n{err}");
    assert!(code == 0 || code == 3, "exit {code}: {err}");
}

#[test]
fn unanswered_ios_are_given_up_after_the_grace_time() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, NULL_IQN).null_lun(1)]);
    let mut b =
        Background::start(&t, NULL_IQN, &["--pattern", "randread", "--qd", "4", "--seconds", "1", "--grace", "1"]);
    b.wait_for("lunlink-bench: running", RUN_LIMIT);
    t.sigstop();
    // The four commands in flight are never answered while tgtd is stopped.
    b.wait_for("still unanswered", Duration::from_secs(30));
    t.sigcont(); // so the logout is answered
    let (code, j, err) = b.finish(RUN_LIMIT);
    assert_eq!(code, 3, "{j}\n{err}");
    assert_eq!(num(&j, "stuck"), 4.0, "{j}\n{err}");
    assert!(num(&j, "errors") >= 4.0, "{j}");
}

/// Issue 5's proof through the engine: verified writes keep running across a target crash
/// (SIGKILL) and restart; the session is reinstated, writes in flight are sent again, and not
/// one IO fails or reads back wrong.
#[test]
fn verified_writes_survive_a_target_kill_and_restart() {
    let spec = TargetSpec::new(1, FILE_IQN).file_lun(1, 64 << 20);
    let mut t = Tgtd::start_with(std::slice::from_ref(&spec));
    let mut b = Background::start(&t, FILE_IQN, &["--pattern", "randwrite", "--qd", "16", "--seconds", "8", "--verify"]);
    b.wait_for("lunlink-bench: running", RUN_LIMIT);
    t.kill();
    t.restart_with(std::slice::from_ref(&spec));
    let (code, j, err) = b.finish(RUN_LIMIT);
    assert_eq!(code, 0, "{j}\n{err}");
    assert_eq!(num(&j, "errors"), 0.0, "{j}\n{err}");
    assert!(num(&j, "ios") > 0.0, "{j}");
    let v = &j["verify"];
    assert_eq!(num(v, "mismatches"), 0.0, "{j}\n{err}");
    assert!(num(v, "checked") > 0.0, "{j}");
}

#[test]
fn two_portals_go_through_the_multipath_layer() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, NULL_IQN).null_lun(1)]);
    let proxy = lunlink_tests::Proxy::start(&t.portal());
    let (code, j, err) = run(
        &t,
        NULL_IQN,
        &["--portal", proxy.portal(), "--policy", "round-robin", "--pattern", "randread", "--bs", "4k", "--qd", "8", "--seconds", "1"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(num(&j, "ios") > 0.0, "{j}");
    assert_eq!(num(&j, "errors"), 0.0, "{j}\n{err}");
    assert!(proxy.bytes() > 100_000, "round-robin sent IO through the second path too ({} bytes)", proxy.bytes());
    assert!(j["portal"].as_str().unwrap().contains(','), "{j}");
}
