//! Small process and polling helpers shared by the harness and the tests.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` until it returns true or `deadline` passes. Returns whether it became true.
///
/// The pause between polls grows from 1 ms to 50 ms: quick when the condition is about to hold,
/// cheap on a loaded 2-core machine when it is not.
pub fn poll_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Polls `cond` until it returns true; panics naming `what` if `deadline` passes first.
///
/// Tests wait for readiness with this instead of fixed sleeps.
#[track_caller]
pub fn wait_until(deadline: Instant, what: &str, cond: impl FnMut() -> bool) {
    if !poll_until(deadline, cond) {
        panic!("timed out waiting for {what}");
    }
}

/// Where tools live besides `$PATH`: sbin directories are often missing from a user's PATH
/// (tgtd and tgtadm are in /usr/sbin).
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Finds an executable by name in `$PATH` and the usual sbin/bin directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Panics unless every tool is installed. Tests must fail loudly when the machine lacks
/// something, never skip: a skipped test reads as a passing one in CI.
#[track_caller]
pub fn require_tools(names: &[&str]) {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| find_tool(n).is_none())
        .collect();
    if !missing.is_empty() {
        panic!(
            "missing tool{} {}: run scripts/install-deps (as root) to install what the tests need",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        );
    }
}

/// Like [`find_tool`], but panics with the [`require_tools`] message when the tool is absent.
#[track_caller]
pub fn tool_path(name: &str) -> PathBuf {
    require_tools(&[name]);
    find_tool(name).unwrap_or_else(|| PathBuf::from(name))
}

/// Panics unless the test runs as root (tgtd creates /run/tgtd and binds privileged state).
#[track_caller]
pub fn require_root(why: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!("{why} needs root: run the tests as root (sudo scripts/test)");
    }
}

/// What a command run by [`run_with_timeout`] produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// `None` when the command ran past its time limit and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command finished in time with exit status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// True when the command was killed for running past its time limit.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// One line for assertion messages: status, then both streams.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed after its time limit".to_owned(),
        };
        format!(
            "{status}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin closed, capturing both streams; kills it after `limit`.
///
/// Several tools in this harness can hang for good against a stopped or broken target
/// (tgtadm against a SIGSTOPped tgtd, iscsi-perf after a reconnect), so nothing is run
/// without a limit.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> std::io::Result<CmdOutput> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read both pipes on their own threads so a chatty child cannot block on a full pipe.
    let out = child.stdout.take().map(spawn_reader);
    let err = child.stderr.take().map(spawn_reader);
    let deadline = Instant::now() + limit;
    let mut status = None;
    poll_until(deadline, || match child.try_wait() {
        Ok(Some(s)) => {
            status = Some(s);
            true
        }
        Ok(None) => false,
        Err(_) => true,
    });
    if status.is_none() {
        // The child is not reaped yet, so its pid cannot have been reused.
        let _ = child.kill();
        let _ = child.wait();
    }
    let join = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(CmdOutput {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

fn spawn_reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// The last `max_lines` lines of a log file (at most 8 KiB), for panic messages.
pub fn file_tail(path: &Path, max_lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("(cannot read {})", path.display());
    };
    let start = bytes.len().saturating_sub(8192);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}
