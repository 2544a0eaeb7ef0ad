//! A real tgtd instance per test, on a free loopback port, torn down on drop.

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Panics with a clear message when a tool the tests need is missing.
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        assert!(found, "missing tool {t}: run scripts/install-deps (as root)");
    }
}

/// Polls `f` until it is true or `deadline` passes; panics naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub struct Tgtd {
    child: Option<Child>,
    ctl: u32,
    port: u16,
    dir: tempfile::TempDir,
    _lock: File,
}

fn lock_ctl() -> (u32, File) {
    let dir = PathBuf::from("/tmp/lunlink-tests");
    fs::create_dir_all(&dir).expect("create /tmp/lunlink-tests");
    for n in 100..1000u32 {
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(format!("tgtd-{n}.lock"))).expect("lock file");
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return (n, f);
        }
    }
    panic!("no free tgtd control number");
}

impl Tgtd {
    /// Starts tgtd and waits until its control socket and portal answer.
    pub fn start() -> Tgtd {
        require_tools(&["tgtd", "tgtadm"]);
        let (ctl, lock) = lock_ctl();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let log = File::create(dir.path().join("tgtd.log")).expect("log");
        let child = Command::new("tgtd")
            .args(["-f", "-C", &ctl.to_string(), "--iscsi", &format!("portal=127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tgtd");
        let mut t = Tgtd { child: Some(child), ctl, port, dir, _lock: lock };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if t.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                panic!("tgtd exited at start: {}", t.log());
            }
            if t.tgtadm(&["--op", "show", "--mode", "sys"]).is_ok() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return t;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tgtd did not become ready within 10 s: {}", t.log());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT"
    pub fn portal(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs tgtadm against this instance; Err carries its stderr.
    pub fn tgtadm(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("tgtadm")
            .args(["-C", &self.ctl.to_string(), "--lld", "iscsi"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("tgtadm {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    pub fn add_target(&self, tid: u32, iqn: &str) -> Result<(), String> {
        self.tgtadm(&["--op", "new", "--mode", "target", "--tid", &tid.to_string(), "-T", iqn]).map(drop)
    }

    /// A sparse file-backed LUN of `size` bytes.
    pub fn add_lun_file(&self, tid: u32, lun: u32, size: u64) -> Result<PathBuf, String> {
        let path = self.dir.path().join(format!("t{tid}-l{lun}.img"));
        let f = File::create(&path).map_err(|e| e.to_string())?;
        f.set_len(size).map_err(|e| e.to_string())?;
        self.tgtadm(&[
            "--op", "new", "--mode", "logicalunit", "--tid", &tid.to_string(), "--lun", &lun.to_string(), "-b",
            path.to_str().unwrap_or_default(),
        ])?;
        Ok(path)
    }

    /// A LUN that stores nothing (1 TiB, for measuring initiator overhead).
    pub fn add_lun_null(&self, tid: u32, lun: u32) -> Result<(), String> {
        self.tgtadm(&[
            "--op", "new", "--mode", "logicalunit", "--tid", &tid.to_string(), "--lun", &lun.to_string(), "--bstype", "null",
            "-b", &format!("null{tid}-{lun}"),
        ])
        .map(drop)
    }

    pub fn bind_all(&self, tid: u32) -> Result<(), String> {
        self.tgtadm(&["--op", "bind", "--mode", "target", "--tid", &tid.to_string(), "-I", "ALL"]).map(drop)
    }

    pub fn add_account(&self, user: &str, password: &str) -> Result<(), String> {
        self.tgtadm(&["--op", "new", "--mode", "account", "--user", user, "--password", password]).map(drop)
    }

    pub fn bind_account(&self, tid: u32, user: &str) -> Result<(), String> {
        self.tgtadm(&["--op", "bind", "--mode", "account", "--tid", &tid.to_string(), "--user", user]).map(drop)
    }

    pub fn bind_outgoing(&self, tid: u32, user: &str) -> Result<(), String> {
        self.tgtadm(&["--op", "bind", "--mode", "account", "--tid", &tid.to_string(), "--user", user, "--outgoing"]).map(drop)
    }

    pub fn set_target_param(&self, tid: u32, key: &str, value: &str) -> Result<(), String> {
        self.tgtadm(&["--op", "update", "--mode", "target", "--tid", &tid.to_string(), "--name", key, "--value", value]).map(drop)
    }

    /// Kills tgtd (SIGKILL): a target crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// tgtd's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("tgtd.log")).unwrap_or_default()
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.kill();
    }
}
