//! A private D-Bus message bus of type "system" for tests of the daemon and lunlinkctl.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{file_tail, tool_path};

/// How long dbus-daemon may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A dbus-daemon with the system bus policy of /work/shared/notes/targets.md, listening on a
/// socket in its own temp dir. Dropping it kills the daemon and removes the dir.
#[derive(Debug)]
pub struct Bus {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

/// The bus policy: open to everyone. `<allow receive_sender="*"/>` matters: a bus of type system
/// delivers no replies without it, and every client call then hangs.
const CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow send_type="method_call"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

impl Bus {
    /// Starts the bus and waits until it has printed its address (it listens by then).
    /// Panics with dbus-daemon's stderr when it cannot start.
    pub fn start() -> Bus {
        let bin = tool_path("dbus-daemon");
        let dir = tempfile::Builder::new()
            .prefix("lunlink-bus-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for dbus-daemon: {e}"));
        let socket = dir.path().join("bus.sock");
        let config = dir.path().join("bus.conf");
        let log = dir.path().join("dbus-daemon.log");
        std::fs::write(&config, CONFIG.replace("SOCKET", &socket.to_string_lossy()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let mut child = Command::new(&bin)
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        // Read the address on a thread: a plain read could block past any deadline.
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
        }
        let address = match rx.recv_timeout(START_LIMIT) {
            Ok(line) if line.starts_with("unix:") => line.trim().to_owned(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dbus-daemon printed no bus address within {START_LIMIT:?}\n{}",
                    file_tail(&log, 20)
                );
            }
        };
        Bus {
            child,
            address,
            dir,
        }
    }

    /// The bus address, e.g. "unix:path=/tmp/lunlink-bus-XXXX/bus.sock,guid=..." (for
    /// DBUS_SYSTEM_BUS_ADDRESS, zbus's `Builder::address`, or `busctl --address`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The bus's unix socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("bus.sock")
    }

    /// The temp dir holding the socket, config and dbus-daemon.log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
