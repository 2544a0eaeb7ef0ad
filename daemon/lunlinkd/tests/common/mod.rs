//! Shared pieces of the end-to-end tests: the real lunlinkd and lunlinkctl binaries on a
//! private bus, and zbus proxies driven from a tokio runtime beside the (synchronous) test.
//!
//! Every wait has a deadline; nothing sleeps for a fixed time to let something happen.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lunlink_dbus::zbus::proxy::CacheProperties;
use lunlink_dbus::zbus::Connection;
use lunlink_dbus::zvariant::{OwnedObjectPath, Value};
use lunlink_dbus::{BusChoice, LunProxy, ManagerProxy, NodeProxy, SessionProxy};
use lunlink_tests::{poll_until, run_with_timeout, wait_until, Bus};

/// Longest any single async step of a test may take.
pub const STEP_LIMIT: Duration = Duration::from_secs(60);

pub fn ctl_path() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_lunlinkd")).with_file_name("lunlinkctl");
    assert!(p.exists(), "{} is missing: build the workspace first (scripts/test does)", p.display());
    p
}

/// A lunlinkd process with its state dir and log, stopped (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

/// Temp dirs of one test: state dir, daemon log, room for config files.
pub struct Dirs {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("lunlinkd.log");
        Dirs { dir, state, log }
    }

    /// Writes a config file into the temp dir and returns its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("lunlink.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Daemon {
    /// Starts lunlinkd on built-in defaults and waits until it answers on the bus.
    pub fn start(bus: &Bus, dirs: &Dirs) -> Daemon {
        Daemon::start_with(bus, dirs, None)
    }

    /// Starts lunlinkd with a config file (or none) and waits until it answers on the bus.
    pub fn start_with(bus: &Bus, dirs: &Dirs, config: Option<&Path>) -> Daemon {
        let nonexistent = PathBuf::from("/nonexistent/lunlink.toml");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&dirs.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lunlinkd"))
            .args(["--bus", bus.address(), "--state-dir"])
            .arg(&dirs.state)
            .arg("--config")
            .arg(config.unwrap_or(&nonexistent))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lunlinkd");
        let mut d = Daemon { child, log: dirs.log.clone() };
        let up = poll_until(Instant::now() + Duration::from_secs(20), || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("lunlinkd exited with {status}:\n{}", std::fs::read_to_string(&dirs.log).unwrap_or_default());
            }
            ctl(bus, &["status"]).status.success()
        });
        assert!(up, "lunlinkd did not answer on the bus within 20 s:\n{}", dirs.log_text());
        d
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) with our unreaped child's pid.
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let mut status = None;
        wait_until(Instant::now() + Duration::from_secs(30), "lunlinkd to stop on SIGTERM", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "lunlinkd stopped with {status:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Longest a lunlinkctl run may take before the test fails (instead of hanging).
pub const CTL_LIMIT: Duration = Duration::from_secs(60);

#[track_caller]
pub fn ctl(bus: &Bus, args: &[&str]) -> Output {
    let out = run_with_timeout(Command::new(ctl_path()).args(["--bus", bus.address()]).args(args), CTL_LIMIT)
        .expect("run lunlinkctl");
    let Some(status) = out.status else {
        panic!("lunlinkctl {args:?} did not finish within {CTL_LIMIT:?}: {}", out.describe());
    };
    Output { status, stdout: out.stdout.into_bytes(), stderr: out.stderr.into_bytes() }
}

#[track_caller]
pub fn ctl_stdin(bus: &Bus, args: &[&str], stdin: &str) -> Output {
    use std::io::{Read, Write};
    let mut c = Command::new(ctl_path())
        .args(["--bus", bus.address()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lunlinkctl");
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let mut status = None;
    // lunlinkctl prints a line or two, far below a pipe's capacity: reading after exit is safe.
    let done = poll_until(Instant::now() + CTL_LIMIT, || {
        status = c.try_wait().unwrap();
        status.is_some()
    });
    if !done {
        let _ = c.kill();
        let _ = c.wait();
        panic!("lunlinkctl {args:?} did not finish within {CTL_LIMIT:?}");
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    c.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    c.stderr.take().unwrap().read_to_end(&mut stderr).unwrap();
    Output { status: status.unwrap(), stdout, stderr }
}

pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "lunlinkctl failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("lunlinkctl --json prints JSON")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tokio runtime whose workers keep the bus connection going while the test thread runs
/// processes and blocking waits.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Runs one async step with a deadline.
#[track_caller]
pub fn run<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(STEP_LIMIT, f).await.expect("async step timed out") })
}

pub async fn connect(bus: &Bus) -> Connection {
    BusChoice::Address(bus.address().to_owned()).connect().await.expect("connect to the test bus")
}

// The proxies below read every property from the daemon. zbus's default proxies answer from
// a cache that a separate task updates from PropertiesChanged, so right after a call that
// changed a property they may still hold the old value: fine for a UI, wrong for a test that
// asserts the daemon's state. `*_watching` proxies keep the cache, for change streams.

pub async fn manager(conn: &Connection) -> ManagerProxy<'static> {
    ManagerProxy::builder(conn).cache_properties(CacheProperties::No).build().await.unwrap()
}

pub async fn manager_watching(conn: &Connection) -> ManagerProxy<'static> {
    ManagerProxy::new(conn).await.unwrap()
}

pub async fn node(conn: &Connection, path: &OwnedObjectPath) -> NodeProxy<'static> {
    NodeProxy::builder(conn).path(path.clone()).unwrap().cache_properties(CacheProperties::No).build().await.unwrap()
}

pub async fn node_watching(conn: &Connection, path: &OwnedObjectPath) -> NodeProxy<'static> {
    NodeProxy::builder(conn).path(path.clone()).unwrap().build().await.unwrap()
}

pub async fn session(conn: &Connection, path: &OwnedObjectPath) -> SessionProxy<'static> {
    SessionProxy::builder(conn).path(path.clone()).unwrap().cache_properties(CacheProperties::No).build().await.unwrap()
}

pub async fn lun(conn: &Connection, path: &OwnedObjectPath) -> LunProxy<'static> {
    LunProxy::builder(conn).path(path.clone()).unwrap().cache_properties(CacheProperties::No).build().await.unwrap()
}

/// An options dictionary from (key, value) pairs.
pub fn opts<'a>(pairs: &[(&'a str, Value<'a>)]) -> HashMap<&'a str, Value<'a>> {
    pairs.iter().map(|(k, v)| (*k, v.clone())).collect()
}

pub fn no_opts() -> HashMap<&'static str, Value<'static>> {
    HashMap::new()
}

/// Waits until `stream` yields an item for which `want` is true; panics naming `what` after
/// `limit`. Items before it are skipped.
pub async fn next_matching<S, T>(stream: &mut S, limit: Duration, what: &str, mut want: impl FnMut(&T) -> bool) -> T
where
    S: futures_lite_stream::Stream<Item = T> + Unpin,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, futures_lite_stream::next(stream)).await {
            Ok(Some(item)) if want(&item) => return item,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the signal stream ended while waiting for {what}"),
            Err(_) => panic!("no {what} within {limit:?}"),
        }
    }
}

/// The smallest piece of a `Stream` API, since this crate has no futures dependency: zbus's
/// signal streams implement `futures_core::Stream`, which is re-exported by zbus as
/// `zbus::export::futures_core`.
pub mod futures_lite_stream {
    pub use lunlink_dbus::zbus::export::futures_core::Stream;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub fn next<S: Stream + Unpin>(s: &mut S) -> Next<'_, S> {
        Next(s)
    }

    pub struct Next<'a, S>(&'a mut S);

    impl<S: Stream + Unpin> Future for Next<'_, S> {
        type Output = Option<S::Item>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            Pin::new(&mut *self.0).poll_next(cx)
        }
    }
}
