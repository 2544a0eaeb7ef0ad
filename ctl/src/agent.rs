//! Asking for a password when polkit wants one, as systemctl does: mutating calls carry
//! ALLOW_INTERACTIVE_AUTHORIZATION, and while stdin is a terminal a `pkttyagent` runs for the
//! call so that polkit can ask on this terminal. `--no-ask-password` turns both off.

use std::io::{IsTerminal, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the agent may take to register with polkit.
const START_LIMIT: Duration = Duration::from_secs(5);

/// A running pkttyagent, stopped when dropped.
pub struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts pkttyagent when stdin is a terminal and it is installed; None otherwise (then
/// polkit can only ask through an agent the session already has, or refuse).
pub fn start() -> Option<Agent> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a local array of two ints.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: both descriptors were just created by pipe(2) and are owned here only.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The read end must not leak into the agent; the write end must (it closes it when ready).
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let child = Command::new("pkttyagent")
        .args(["--notify-fd", &write_end.as_raw_fd().to_string(), "--fallback"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    drop(write_end);
    // Wait until the agent has registered (it closes the notify fd), so the call that follows
    // finds it; a broken agent must not hold the call up for long.
    let mut f = std::fs::File::from(read_end);
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let _ = f.read(&mut b);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(START_LIMIT.saturating_sub(t0.elapsed()));
    Some(Agent(child))
}
