//! The Session object follows the engine's reconnects: State goes to "reconnecting" when the
//! target dies and back to "logged-in" when it returns, through the real daemon and ctl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lunlink_tests::{wait_until, Bus, TargetSpec, Tgtd};

const IQN: &str = "iqn.2024-01.test:reconnect";

fn ctl(bus: &Bus, args: &[&str]) -> Output {
    let p: PathBuf = Path::new(env!("CARGO_BIN_EXE_lunlinkd")).with_file_name("lunlinkctl");
    assert!(p.exists(), "{} is missing: build the workspace first (scripts/test does)", p.display());
    Command::new(p).args(["--bus", bus.address()]).args(args).stdin(Stdio::null()).output().expect("run lunlinkctl")
}

fn sessions(bus: &Bus) -> String {
    let o = ctl(bus, &["--json", "sessions"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn session_state_follows_target_death_and_return() {
    let spec = TargetSpec::new(1, IQN).file_lun(1, 8 << 20);
    let mut tgt = Tgtd::start_with(std::slice::from_ref(&spec));
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lunlink.toml");
    std::fs::write(&cfg, "[timeouts]\nnoop_interval = 1\nnoop_timeout = 1\n").unwrap();
    let _d = Daemon(
        Command::new(env!("CARGO_BIN_EXE_lunlinkd"))
            .args(["--bus", bus.address(), "--state-dir"])
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&cfg)
            .stderr(std::fs::File::create(dir.path().join("d.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let soon = || Instant::now() + Duration::from_secs(30);
    wait_until(soon(), "lunlinkd to answer", || ctl(&bus, &["status"]).status.success());
    assert!(ctl(&bus, &["discover", &tgt.portal()]).status.success());
    assert!(ctl(&bus, &["login", IQN]).status.success());
    assert!(sessions(&bus).contains("logged-in"));
    tgt.kill();
    wait_until(soon(), "State reconnecting", || sessions(&bus).contains("reconnecting"));
    tgt.restart_with(&[spec]);
    wait_until(Instant::now() + Duration::from_secs(60), "State logged-in again", || sessions(&bus).contains("logged-in"));
    let o = ctl(&bus, &["logout", "--all"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
