//! A real iSCSI target for tests: one private `tgtd` instance on a loopback port.
//!
//! See /work/shared/notes/targets.md for the recipes this follows and tgtd's quirks: it ignores
//! SIGTERM (we SIGKILL it), LUN 0 of every target is a controller LUN, and when it cannot bind the
//! portal given on its command line it silently listens on 0.0.0.0:3260 and [::]:3260 instead, so
//! every start checks which portals it actually has.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lock::{lease_port, LockFile, PortLease};
use crate::util::{file_tail, poll_until, require_root, run_with_timeout, tool_path};

/// Control numbers (`tgtd -C N`) the harness uses: high enough to stay clear of the small numbers
/// people pick by hand (`-C 11`).
const CTL_FIRST: u32 = 20_000;
const CTL_COUNT: u32 = 4_000;
/// How long tgtd may take to answer tgtadm after it was spawned (loaded 2-core CI machines).
const READY_LIMIT: Duration = Duration::from_secs(20);
/// How long a (re)start may take in all, including retries on a busy control number or port.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Default limit for one tgtadm call: it blocks for good against a SIGSTOPped tgtd.
const TGTADM_LIMIT: Duration = Duration::from_secs(10);
/// Lines of tgtd's log quoted in panic messages and errors.
const TAIL_LINES: usize = 25;

/// A tgtadm call that failed, with what tgtadm said and the end of tgtd's log.
pub struct TgtError {
    /// The command line that failed, or the operation when no tgtadm call was made.
    pub command: String,
    /// Exit status, time-out, or the harness's reason for refusing the call.
    pub problem: String,
    /// What tgtadm printed on stderr (e.g. "tgtadm: this target already exists").
    pub stderr: String,
    /// The last lines of tgtd's own log at the time of the failure.
    pub tgtd_log_tail: String,
}

impl fmt::Display for TgtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed: {}", self.command, self.problem)?;
        if !self.stderr.trim().is_empty() {
            write!(f, ": {}", self.stderr.trim())?;
        }
        write!(f, "\n--- tail of tgtd's log ---\n{}", self.tgtd_log_tail)
    }
}

// Debug shows the readable form, so `.unwrap()` in a test prints something useful.
impl fmt::Debug for TgtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TgtError {}

/// How a LUN of a [`TargetSpec`] is backed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LunSpec {
    /// A sparse file of this size in the instance's temp dir; it survives [`Tgtd::restart`], so
    /// data written before a "reboot" can be read back after it.
    File { lun: u64, size_bytes: u64 },
    /// `--bstype null`: a 1 TiB LU that stores nothing (reads return zeros).
    Null { lun: u64 },
}

/// A target to create, kept by tests so the same target can be re-created after
/// [`Tgtd::restart`] (tgtd keeps no configuration across a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub tid: u32,
    pub iqn: String,
    pub luns: Vec<LunSpec>,
    /// Target parameters set with `--op update` (HeaderDigest, MaxRecvDataSegmentLength, ...).
    pub params: Vec<(String, String)>,
    /// CHAP accounts the initiator must log in with (one-way CHAP).
    pub incoming: Vec<(String, String)>,
    /// The account the target answers mutual CHAP with.
    pub outgoing: Option<(String, String)>,
    /// Whether to accept every initiator (`-I ALL`); true unless changed.
    pub bind_all: bool,
}

impl TargetSpec {
    /// A target without LUNs (besides tgtd's controller LUN 0) open to every initiator.
    pub fn new(tid: u32, iqn: &str) -> Self {
        TargetSpec {
            tid,
            iqn: iqn.to_owned(),
            luns: Vec::new(),
            params: Vec::new(),
            incoming: Vec::new(),
            outgoing: None,
            bind_all: true,
        }
    }

    pub fn file_lun(mut self, lun: u64, size_bytes: u64) -> Self {
        self.luns.push(LunSpec::File { lun, size_bytes });
        self
    }

    pub fn null_lun(mut self, lun: u64) -> Self {
        self.luns.push(LunSpec::Null { lun });
        self
    }

    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Requires one-way CHAP with this account.
    pub fn chap(mut self, user: &str, secret: &str) -> Self {
        self.incoming.push((user.to_owned(), secret.to_owned()));
        self
    }

    /// The target proves itself with this account when the initiator asks (mutual CHAP).
    pub fn mutual_chap(mut self, user: &str, secret: &str) -> Self {
        self.outgoing = Some((user.to_owned(), secret.to_owned()));
        self
    }
}

/// A private tgtd on 127.0.0.1 with its own control number, port and temp dir.
///
/// Any number of instances can run at once, in threads and processes: the control number and the
/// port are reserved with lock files under [`crate::LOCK_DIR`] for the instance's life. Dropping
/// it kills tgtd and removes its temp dir (LUN files, log).
#[derive(Debug)]
pub struct Tgtd {
    ctl: u32,
    port: u16,
    child: Option<Child>,
    starts: u32,
    extra_portals: Vec<SocketAddr>,
    tgtd_bin: PathBuf,
    tgtadm_bin: PathBuf,
    tgtadm_limit: Duration,
    log: PathBuf,
    ctl_lock: LockFile,
    port_lease: Option<PortLease>,
    dir: tempfile::TempDir,
}

/// How one launch of tgtd went.
enum Launch {
    Ready,
    /// Another tgtd (outside the harness) holds this control number.
    CtlBusy,
    Died(String),
}

impl Tgtd {
    /// Starts a tgtd on a free loopback port and waits until it answers tgtadm.
    ///
    /// Panics (with the tail of tgtd's log) when tgtd cannot be started: the tests need it.
    pub fn start() -> Tgtd {
        require_root("tgtd");
        let tgtd_bin = tool_path("tgtd");
        let tgtadm_bin = tool_path("tgtadm");
        let dir = tempfile::Builder::new()
            .prefix("lunlink-tgtd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for tgtd: {e}"));
        let log = dir.path().join("tgtd.log");
        let mut hint = seed();
        let (ctl, ctl_lock) = acquire_ctl(&mut hint);
        let mut t = Tgtd {
            ctl,
            port: 0,
            child: None,
            starts: 0,
            extra_portals: Vec::new(),
            tgtd_bin,
            tgtadm_bin,
            tgtadm_limit: TGTADM_LIMIT,
            log,
            ctl_lock,
            port_lease: None,
            dir,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "tgtd did not start within {START_LIMIT:?}\n{}",
                t.log_tail()
            );
            // Port 0: the kernel picks a free port atomically, so the first start cannot lose a
            // race for it; we then read back which port tgtd got.
            match t.launch("127.0.0.1:0") {
                Launch::Ready => {}
                Launch::CtlBusy => {
                    t.kill();
                    let (ctl, lock) = acquire_ctl(&mut hint);
                    t.ctl = ctl;
                    t.ctl_lock = lock;
                    continue;
                }
                Launch::Died(why) => panic!("{why}\n--- tail of tgtd's log ---\n{}", t.log_tail()),
            }
            let portals = t
                .portals()
                .unwrap_or_else(|e| panic!("tgtd started but lists no portals: {e}"));
            let port = match portals.as_slice() {
                [only] if only.ip().is_loopback() => only.port(),
                other => panic!(
                    "tgtd listens on {other:?} instead of one 127.0.0.1 port\n{}",
                    t.log_tail()
                ),
            };
            // Another harness user may hold a lease on the very port the kernel gave us.
            match lease_port(port) {
                Some(lease) => {
                    t.port = port;
                    t.port_lease = Some(lease);
                    return t;
                }
                None => t.kill(),
            }
        }
    }

    /// Starts a tgtd and creates these targets (panics if any tgtadm call fails).
    pub fn start_with(specs: &[TargetSpec]) -> Tgtd {
        let t = Tgtd::start();
        for spec in specs {
            t.apply(spec)
                .unwrap_or_else(|e| panic!("cannot create target {}: {e}", spec.iqn));
        }
        t
    }

    /// Spawns tgtd on `portal` and waits until tgtadm gets an answer from it.
    fn launch(&mut self, portal: &str) -> Launch {
        self.kill();
        self.starts += 1;
        let log_file = OpenOptions::new().create(true).append(true).open(&self.log);
        let mut log_file = match log_file {
            Ok(f) => f,
            Err(e) => return Launch::Died(format!("cannot open {}: {e}", self.log.display())),
        };
        let offset = log_file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(
            log_file,
            "=== lunlink-tests: start #{} of tgtd -C {} on {portal} ===",
            self.starts, self.ctl
        );
        let (out, err) = match (log_file.try_clone(), log_file.try_clone()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Launch::Died(format!("cannot share the log file: {e}"))
            }
        };
        let child = Command::new(&self.tgtd_bin)
            .args([
                "-f",
                "-C",
                &self.ctl.to_string(),
                "--iscsi",
                &format!("portal={portal}"),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Launch::Died(format!("cannot run {}: {e}", self.tgtd_bin.display())),
        };
        let deadline = Instant::now() + READY_LIMIT;
        let mut exited = None;
        let ready = poll_until(deadline, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            self.tgtadm_with_limit(&["--op", "show", "--mode", "sys"], Duration::from_secs(5))
                .is_ok()
        });
        if exited.is_none() {
            self.child = Some(child);
        }
        if let Some(status) = exited {
            if log_since(&self.log, offset).contains("another tgtd is using") {
                return Launch::CtlBusy;
            }
            return Launch::Died(format!("tgtd -C {} exited at start ({status})", self.ctl));
        }
        if !ready {
            return Launch::Died(format!(
                "tgtd -C {} did not answer tgtadm within {READY_LIMIT:?}",
                self.ctl
            ));
        }
        Launch::Ready
    }

    /// SIGKILLs tgtd (a target crash or power loss) and waits for it. Targets are gone; the temp
    /// dir, LUN files, control number and port stay reserved for [`Tgtd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGKILL also ends a SIGSTOPped process; tgtd ignores SIGTERM anyway.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts tgtd again (after [`Tgtd::kill`], or kills it first) with the same control number
    /// and port, and re-adds the portals added with [`Tgtd::add_portal`]. Targets must be
    /// re-created by the caller, e.g. with [`Tgtd::restart_with`].
    ///
    /// Retries while the port is still taken (e.g. by a connection's socket); panics when it
    /// stays taken for a minute.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_LIMIT;
        let main = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            // tgtd would fall back to 0.0.0.0:3260 on a bind failure: never let it try.
            let extra = self.extra_portals.clone();
            let free = poll_until(deadline, || {
                std::iter::once(&main)
                    .chain(&extra)
                    .all(|a| TcpListener::bind(a).is_ok())
            });
            assert!(
                free,
                "port {} stayed in use for {START_LIMIT:?}: cannot restart tgtd",
                self.port
            );
            match self.launch(&main.to_string()) {
                Launch::Ready => {}
                Launch::CtlBusy => panic!(
                    "another tgtd outside the harness took control number {} while ours was down",
                    self.ctl
                ),
                Launch::Died(why) => {
                    panic!("{why}\n--- tail of tgtd's log ---\n{}", self.log_tail())
                }
            }
            match self.portals() {
                Ok(p) if p == [main] => break,
                // Someone bound the port between our check and tgtd's bind: try again.
                _ => self.kill(),
            }
            assert!(
                Instant::now() < deadline,
                "tgtd could not get port {} back\n{}",
                self.port,
                self.log_tail()
            );
        }
        for addr in self.extra_portals.clone() {
            let a = addr.to_string();
            self.tgtadm(&[
                "--op",
                "new",
                "--mode",
                "portal",
                "--param",
                &format!("portal={a}"),
            ])
            .unwrap_or_else(|e| panic!("cannot re-add portal {a} after restart: {e}"));
        }
    }

    /// [`Tgtd::restart`], then re-creates the targets (panics if a tgtadm call fails).
    pub fn restart_with(&mut self, specs: &[TargetSpec]) {
        self.restart();
        for spec in specs {
            self.apply(spec)
                .unwrap_or_else(|e| panic!("cannot re-create target {}: {e}", spec.iqn));
        }
    }

    /// Creates a target as described: target, LUNs, parameters, accounts, then the initiator ACL
    /// last so no initiator logs in to a half-made target.
    ///
    /// CHAP accounts are global in tgtd: an account that already exists (e.g. shared by two
    /// specs) is reused as it is.
    pub fn apply(&self, spec: &TargetSpec) -> Result<(), TgtError> {
        self.add_target(spec.tid, &spec.iqn)?;
        for lun in &spec.luns {
            match *lun {
                LunSpec::File { lun, size_bytes } => {
                    self.add_lun_file(spec.tid, lun, size_bytes).map(drop)?
                }
                LunSpec::Null { lun } => self.add_lun_null(spec.tid, lun)?,
            }
        }
        for (key, value) in &spec.params {
            self.set_target_param(spec.tid, key, value)?;
        }
        for (user, secret) in &spec.incoming {
            self.ensure_account(user, secret)?;
            self.bind_account(spec.tid, user)?;
        }
        if let Some((user, secret)) = &spec.outgoing {
            self.ensure_account(user, secret)?;
            self.bind_outgoing(spec.tid, user)?;
        }
        if spec.bind_all {
            self.bind_all(spec.tid)?;
        }
        Ok(())
    }

    fn ensure_account(&self, user: &str, secret: &str) -> Result<(), TgtError> {
        match self.add_account(user, secret) {
            Err(e) if e.stderr.contains("already exists") => Ok(()),
            other => other,
        }
    }

    /// The port tgtd listens on at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT".
    pub fn portal(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A libiscsi URL for a LUN: "iscsi://127.0.0.1:PORT/IQN/LUN".
    pub fn url(&self, iqn: &str, lun: u64) -> String {
        format!("iscsi://{}/{iqn}/{lun}", self.portal())
    }

    /// The control number (`tgtd -C N`, `tgtadm -C N`).
    pub fn control_number(&self) -> u32 {
        self.ctl
    }

    /// tgtd's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether tgtd is still alive (false after [`Tgtd::kill`] or a crash).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                self.child = None;
                false
            }
            _ => false,
        }
    }

    /// The instance's temp dir (LUN files and tgtd.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file tgtd's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of tgtd's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        file_tail(&self.log, TAIL_LINES)
    }

    /// Changes the limit for each tgtadm call (10 s by default). tgtadm hangs against a stopped
    /// tgtd, so tests of a silent target may want a short one.
    pub fn set_tgtadm_timeout(&mut self, limit: Duration) {
        self.tgtadm_limit = limit;
    }

    /// Runs `tgtadm -C N --lld iscsi ARGS` and returns its stdout.
    pub fn tgtadm(&self, args: &[&str]) -> Result<String, TgtError> {
        self.tgtadm_with_limit(args, self.tgtadm_limit)
    }

    fn tgtadm_with_limit(&self, args: &[&str], limit: Duration) -> Result<String, TgtError> {
        let ctl = self.ctl.to_string();
        let mut cmd = Command::new(&self.tgtadm_bin);
        cmd.args(["-C", &ctl, "--lld", "iscsi"]).args(args);
        let command = format!("tgtadm -C {ctl} --lld iscsi {}", args.join(" "));
        let out = run_with_timeout(&mut cmd, limit)
            .map_err(|e| self.error(&command, &format!("cannot run tgtadm: {e}")))?;
        match out.status {
            Some(s) if s.success() => Ok(out.stdout),
            Some(s) => Err(TgtError {
                stderr: out.stderr,
                ..self.error(&command, &s.to_string())
            }),
            None => Err(TgtError {
                stderr: out.stderr,
                ..self.error(
                    &command,
                    &format!("no answer within {limit:?} (is tgtd stopped?)"),
                )
            }),
        }
    }

    fn error(&self, command: &str, problem: &str) -> TgtError {
        TgtError {
            command: command.to_owned(),
            problem: problem.to_owned(),
            stderr: String::new(),
            tgtd_log_tail: self.log_tail(),
        }
    }

    /// `--op new --mode target`: a target with only the controller LUN 0.
    pub fn add_target(&self, tid: u32, iqn: &str) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "target",
            "--tid",
            &tid.to_string(),
            "-T",
            iqn,
        ])
        .map(drop)
    }

    /// Where [`Tgtd::add_lun_file`] keeps the backing file of a LUN.
    pub fn lun_file_path(&self, tid: u32, lun: u64) -> PathBuf {
        self.dir.path().join(format!("tid{tid}-lun{lun}.img"))
    }

    /// Adds a disk LUN backed by a sparse file of `size_bytes` in the temp dir; returns the
    /// file's path. An existing file (e.g. from before a restart) keeps its data.
    pub fn add_lun_file(&self, tid: u32, lun: u64, size_bytes: u64) -> Result<PathBuf, TgtError> {
        let path = self.lun_file_path(tid, lun);
        let sized = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f: File| f.set_len(size_bytes));
        if let Err(e) = sized {
            return Err(self.error(&format!("create {}", path.display()), &e.to_string()));
        }
        let p = path.to_string_lossy().into_owned();
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            &tid.to_string(),
            "--lun",
            &lun.to_string(),
            "-b",
            &p,
        ])?;
        Ok(path)
    }

    /// Adds a `--bstype null` LUN: 1 TiB that stores nothing, for measuring the initiator.
    /// Never send it GET LBA STATUS: that hangs tgtd for good.
    pub fn add_lun_null(&self, tid: u32, lun: u64) -> Result<(), TgtError> {
        let name = format!("null-tid{tid}-lun{lun}");
        let (tid, lun) = (tid.to_string(), lun.to_string());
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            &tid,
            "--lun",
            &lun,
            "--bstype",
            "null",
            "-b",
            &name,
        ])
        .map(drop)
    }

    /// Lets every initiator log in to the target (`-I ALL`).
    pub fn bind_all(&self, tid: u32) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "bind",
            "--mode",
            "target",
            "--tid",
            &tid.to_string(),
            "-I",
            "ALL",
        ])
        .map(drop)
    }

    /// Creates a CHAP account (global to the instance).
    pub fn add_account(&self, user: &str, secret: &str) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "account",
            "--user",
            user,
            "--password",
            secret,
        ])
        .map(drop)
    }

    /// Requires CHAP with this account to log in to the target.
    pub fn bind_account(&self, tid: u32, user: &str) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "bind",
            "--mode",
            "account",
            "--tid",
            &tid.to_string(),
            "--user",
            user,
        ])
        .map(drop)
    }

    /// The account the target uses to answer mutual CHAP.
    pub fn bind_outgoing(&self, tid: u32, user: &str) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "bind",
            "--mode",
            "account",
            "--tid",
            &tid.to_string(),
            "--user",
            user,
            "--outgoing",
        ])
        .map(drop)
    }

    /// Requires CHAP with this account for discovery sessions (SendTargets).
    pub fn bind_discovery_account(&self, user: &str) -> Result<(), TgtError> {
        self.tgtadm(&["--op", "bind", "--mode", "account", "--user", user])
            .map(drop)
    }

    /// The account tgtd answers mutual CHAP with in discovery sessions.
    pub fn bind_discovery_outgoing(&self, user: &str) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "bind",
            "--mode",
            "account",
            "--user",
            user,
            "--outgoing",
        ])
        .map(drop)
    }

    /// Sets a target parameter (HeaderDigest, DataDigest, MaxRecvDataSegmentLength,
    /// nop_interval, ...). A non-default value makes tgtd offer the key itself during login.
    pub fn set_target_param(&self, tid: u32, key: &str, value: &str) -> Result<(), TgtError> {
        self.tgtadm(&[
            "--op",
            "update",
            "--mode",
            "target",
            "--tid",
            &tid.to_string(),
            "--name",
            key,
            "--value",
            value,
        ])
        .map(drop)
    }

    /// The target's session parameters as tgtd lists them ("MaxRecvDataSegmentLength", "8192").
    pub fn target_params(&self, tid: u32) -> Result<Vec<(String, String)>, TgtError> {
        let out = self.tgtadm(&[
            "--op",
            "show",
            "--mode",
            "target",
            "--tid",
            &tid.to_string(),
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// The target's block of `--op show --mode target` (state, I_T nexus, LUNs, accounts, ACL).
    pub fn show_target(&self, tid: u32) -> Result<String, TgtError> {
        let out = self.tgtadm(&["--op", "show", "--mode", "target"])?;
        let head = format!("Target {tid}:");
        let mut block = String::new();
        let mut inside = false;
        for line in out.lines() {
            if line.starts_with("Target ") {
                inside = line.starts_with(&head);
            }
            if inside {
                block.push_str(line);
                block.push('\n');
            }
        }
        if block.is_empty() {
            return Err(self.error(&format!("show target {tid}"), "no such target"));
        }
        Ok(block)
    }

    /// Adds a listening portal, e.g. "127.0.0.2:PORT" or "[::1]:PORT" (same LUs: multipath).
    /// Only loopback addresses are accepted: tests must not listen on the network.
    pub fn add_portal(&mut self, addr: &str) -> Result<(), TgtError> {
        let parsed: SocketAddr = addr
            .parse()
            .map_err(|_| self.error(&format!("add portal {addr}"), "not an IP:PORT address"))?;
        if !parsed.ip().is_loopback() {
            return Err(self.error(
                &format!("add portal {addr}"),
                "refusing a non-loopback address in tests",
            ));
        }
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "portal",
            "--param",
            &format!("portal={parsed}"),
        ])?;
        self.extra_portals.push(parsed);
        Ok(())
    }

    /// The portals tgtd listens on.
    pub fn portals(&self) -> Result<Vec<SocketAddr>, TgtError> {
        let out = self.tgtadm(&["--op", "show", "--mode", "portal"])?;
        parse_portals(&out)
            .map_err(|line| self.error("show portals", &format!("cannot parse {line:?}")))
    }

    /// The target's connections as (session id, connection id).
    pub fn show_conns(&self, tid: u32) -> Result<Vec<(u64, u32)>, TgtError> {
        let out = self.tgtadm(&["--op", "show", "--mode", "conn", "--tid", &tid.to_string()])?;
        parse_conns(&out)
            .map_err(|line| self.error("show conns", &format!("cannot parse {line:?}")))
    }

    /// Drops a connection from the target side (TCP FIN, no async message).
    pub fn delete_conn(&self, tid: u32, sid: u64, cid: u32) -> Result<(), TgtError> {
        let (tid, sid, cid) = (tid.to_string(), sid.to_string(), cid.to_string());
        self.tgtadm(&[
            "--op", "delete", "--mode", "conn", "--tid", &tid, "--sid", &sid, "--cid", &cid,
        ])
        .map(drop)
    }

    /// Sets a target "offline" (new logins get status 0x0300; commands sent meanwhile are never
    /// answered) or "ready".
    pub fn set_target_state(&self, tid: u32, state: &str) -> Result<(), TgtError> {
        self.set_target_param(tid, "state", state)
    }

    /// Takes a LUN offline (it answers NOT READY) or back online.
    pub fn lun_online(&self, tid: u32, lun: u64, online: bool) -> Result<(), TgtError> {
        let params = if online { "online=1" } else { "online=0" };
        let (tid, lun) = (tid.to_string(), lun.to_string());
        self.tgtadm(&[
            "--op",
            "update",
            "--mode",
            "logicalunit",
            "--tid",
            &tid,
            "--lun",
            &lun,
            "--params",
            params,
        ])
        .map(drop)
    }

    /// SIGSTOP: tgtd goes silent (connections stay open, nothing is answered). tgtadm calls hang
    /// until [`Tgtd::sigcont`]; they give up after the tgtadm limit.
    #[track_caller]
    pub fn sigstop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT: tgtd resumes after [`Tgtd::sigstop`].
    #[track_caller]
    pub fn sigcont(&self) {
        self.signal(libc::SIGCONT);
    }

    #[track_caller]
    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().and_then(|p| libc::pid_t::try_from(p).ok());
        let Some(pid) = pid else {
            panic!("tgtd -C {} is not running", self.ctl)
        };
        // SAFETY: kill(2) takes plain integers; `pid` is our unreaped child, so it is not reused.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        // A test failing with a tgtd around: what tgtd saw is often the clue. The test harness
        // captures this and shows it with the failure.
        if std::thread::panicking() {
            eprintln!(
                "--- tail of tgtd's log (tgtd -C {}, port {}) ---\n{}",
                self.ctl,
                self.port,
                self.log_tail()
            );
        }
        self.kill();
        // tgtd leaves its control socket behind; we still hold the control number's lock, so no
        // other harness user can be starting a tgtd with it.
        for suffix in ["", ".lock"] {
            let _ = std::fs::remove_file(format!("/run/tgtd/socket.{}{suffix}", self.ctl));
        }
        // `dir` (temp dir), the port lease and the control lock are released as fields drop.
    }
}

/// Reserves the next free control number at or after `hint`.
fn acquire_ctl(hint: &mut u32) -> (u32, LockFile) {
    for _ in 0..CTL_COUNT {
        let n = CTL_FIRST + *hint % CTL_COUNT;
        *hint = hint.wrapping_add(1);
        match LockFile::try_acquire(&format!("tgtd-{n}")) {
            Ok(Some(lock)) => return (n, lock),
            Ok(None) => {}
            Err(e) => panic!("cannot create lock files in {}: {e}", crate::LOCK_DIR),
        }
    }
    panic!("all {CTL_COUNT} tgtd control numbers are in use by other tests")
}

/// A starting point that differs between processes, so parallel test binaries do not all probe
/// the same control numbers first.
fn seed() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(7919) ^ nanos
}

fn log_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Parses `tgtadm --op show --mode portal`: lines "Portal: 127.0.0.1:3260,1" or
/// "Portal: [::1]:3260,1" (address, then the target portal group tag).
fn parse_portals(out: &str) -> Result<Vec<SocketAddr>, String> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            line.trim()
                .strip_prefix("Portal:")
                .and_then(|rest| rest.trim().rsplit_once(','))
                .and_then(|(addr, _tpgt)| addr.parse().ok())
                .ok_or_else(|| line.to_owned())
        })
        .collect()
}

/// Parses `tgtadm --op show --mode conn --tid T`: a "Session: S" line, then one
/// "Connection: C" line (plus details) per connection of that session.
fn parse_conns(out: &str) -> Result<Vec<(u64, u32)>, String> {
    let mut sid = None;
    let mut conns = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("Session:") {
            sid = Some(s.trim().parse::<u64>().map_err(|_| line.to_owned())?);
        } else if let Some(c) = line.strip_prefix("Connection:") {
            let cid = c.trim().parse::<u32>().map_err(|_| line.to_owned())?;
            conns.push((sid.ok_or_else(|| line.to_owned())?, cid));
        }
    }
    Ok(conns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_portals_as_tgtd_prints_them() {
        // Output of tgtadm 1.0.85 after adding an IPv6 and a second IPv4 portal.
        let out = "Portal: [::1]:42987,1\nPortal: 127.0.0.2:42987,1\nPortal: 127.0.0.1:42987,1\n";
        let want: Vec<SocketAddr> = vec![
            "[::1]:42987".parse().unwrap(),
            "127.0.0.2:42987".parse().unwrap(),
            "127.0.0.1:42987".parse().unwrap(),
        ];
        assert_eq!(parse_portals(out).unwrap(), want);
        assert_eq!(
            parse_portals("Portal: nonsense\n"),
            Err("Portal: nonsense".to_owned())
        );
        assert_eq!(parse_portals("").unwrap(), vec![]);
    }

    #[test]
    fn parses_connections_as_tgtd_prints_them() {
        let out = "Session: 17\n    Connection: 0\n        Initiator: iqn.2010-11.libiscsi:iscsi-perf\n        \
                   IP Address: 127.0.0.1\nSession: 18\n    Connection: 0\n    Connection: 1\n";
        assert_eq!(parse_conns(out).unwrap(), vec![(17, 0), (18, 0), (18, 1)]);
        assert_eq!(parse_conns("").unwrap(), vec![]);
        assert!(
            parse_conns("    Connection: 0\n").is_err(),
            "a connection outside a session is malformed"
        );
        assert!(parse_conns("Session: x\n").is_err());
    }

    #[test]
    fn spec_builder_keeps_everything() {
        let s = TargetSpec::new(3, "iqn.2024-01.test:x")
            .file_lun(1, 4096)
            .null_lun(2)
            .param("HeaderDigest", "CRC32C")
            .chap("u", "secretsecret")
            .mutual_chap("t", "othersecret1");
        assert_eq!(
            s.luns,
            vec![
                LunSpec::File {
                    lun: 1,
                    size_bytes: 4096
                },
                LunSpec::Null { lun: 2 }
            ]
        );
        assert_eq!(
            s.params,
            vec![("HeaderDigest".to_owned(), "CRC32C".to_owned())]
        );
        assert_eq!(
            s.incoming,
            vec![("u".to_owned(), "secretsecret".to_owned())]
        );
        assert_eq!(
            s.outgoing,
            Some(("t".to_owned(), "othersecret1".to_owned()))
        );
        assert!(s.bind_all);
    }
}
