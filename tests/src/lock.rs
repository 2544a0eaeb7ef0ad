//! Cross-process reservations (tgtd control numbers, loopback ports) with flock(2) lock files.
//!
//! Tests run as threads of one process and as several processes at once (other crates' tests,
//! other engineers' runs), so an in-process registry is not enough. flock locks belong to an
//! open file description: two threads opening the same file conflict just like two processes,
//! and the kernel drops the lock when a process dies, so a crashed run leaves nothing held.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

/// Directory holding the lock files, shared by every user of the harness on this machine.
pub const LOCK_DIR: &str = "/tmp/lunlink-tests";

/// An exclusive flock on `LOCK_DIR/<name>.lock`, held until drop.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    // Held open for its lock: closing it releases the lock.
    _file: File,
}

impl LockFile {
    /// Takes the lock if nobody holds it; `Ok(None)` when it is held elsewhere.
    pub fn try_acquire(name: &str) -> io::Result<Option<LockFile>> {
        let dir = PathBuf::from(LOCK_DIR);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            // Sticky and world-writable like /tmp, so runs as different users can share it.
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
        }
        let path = dir.join(format!("{name}.lock"));
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            // SAFETY: the descriptor is valid for the life of `file`; flock does not touch memory.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => Ok(None),
                    _ => Err(err),
                };
            }
            // The holder before us unlinks the file when it releases it; if we locked a file that
            // was unlinked meanwhile, our lock protects nothing: open the new file and try again.
            let same = match (file.metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                return Ok(Some(LockFile { path, _file: file }));
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Unlink while still holding the lock (see the inode check above); closing `file`
        // afterwards releases it.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A loopback TCP port reserved against other users of this harness until drop.
///
/// The port is not bound: whoever uses it binds it. Other harness users (in any process) never
/// hand out a leased port, but programs outside the harness can still take it.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    _lock: LockFile,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Picks a free port on 127.0.0.1 and reserves it (see [`PortLease`]).
///
/// Panics when no port can be had, which means the machine is out of ports or /tmp is broken.
pub fn reserve_loopback_port() -> PortLease {
    for _ in 0..1000 {
        // The kernel picks a port nobody has bound; the lock keeps other harness users off it
        // between our close and the caller's bind.
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("cannot bind any port on 127.0.0.1: {e}"),
        };
        if let Some(lease) = lease_port(port) {
            return lease;
        }
    }
    panic!("no free loopback port after 1000 tries")
}

/// A free port on 127.0.0.1, e.g. one where nothing listens (connection-refused tests) or for a
/// server the test starts at once. Hold a [`reserve_loopback_port`] lease instead when the port
/// must stay reserved for a while.
pub fn free_loopback_port() -> u16 {
    reserve_loopback_port().port()
}

/// Leases a given port if no other harness user holds it.
pub(crate) fn lease_port(port: u16) -> Option<PortLease> {
    match LockFile::try_acquire(&format!("port-{port}")) {
        Ok(Some(lock)) => Some(PortLease { port, _lock: lock }),
        Ok(None) => None,
        Err(e) => panic!("cannot create lock files in {LOCK_DIR}: {e}"),
    }
}
