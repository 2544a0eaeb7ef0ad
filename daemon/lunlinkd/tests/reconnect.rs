//! The Session object follows the engine's reconnects: State goes to "reconnecting" when the
//! target dies and back to "logged-in" when it returns, through the real daemon and ctl.

use std::time::{Duration, Instant};

use lunlink_tests::{wait_until, Bus, TargetSpec, Tgtd};

mod common;
use common::{ctl, ok, Daemon, Dirs};

const IQN: &str = "iqn.2024-01.test:reconnect";

fn sessions(bus: &Bus) -> String {
    ok(&ctl(bus, &["--json", "sessions"]))
}

#[test]
fn session_state_follows_target_death_and_return() {
    let spec = TargetSpec::new(1, IQN).file_lun(1, 8 << 20);
    let mut tgt = Tgtd::start_with(std::slice::from_ref(&spec));
    let bus = Bus::start();
    let dirs = Dirs::new();
    let cfg = dirs.config("[timeouts]\nnoop_interval = 1\nnoop_timeout = 1\n");
    let _d = Daemon::start_with(&bus, &dirs, Some(&cfg));
    let soon = || Instant::now() + Duration::from_secs(30);
    assert!(ctl(&bus, &["discover", &tgt.portal()]).status.success());
    assert!(ctl(&bus, &["login", IQN]).status.success());
    assert!(sessions(&bus).contains("logged-in"));
    // The timeouts in effect are readable on the Session (config: NOP every 1 s, 1 s timeout).
    let listed: serde_json::Value = serde_json::from_str(&sessions(&bus)).unwrap();
    let path = listed[0]["path"].as_str().expect("session path").to_owned();
    let rt = common::runtime();
    let t = common::run(&rt, async {
        let conn = common::connect(&bus).await;
        let p = lunlink_dbus::SessionProxy::builder(&conn).path(path).unwrap().build().await.unwrap();
        p.timeouts().await.unwrap()
    });
    let get = |k: &str| u32::try_from(t[k].clone()).unwrap_or_else(|_| panic!("no {k} in {t:?}"));
    assert_eq!((get("NoopInterval"), get("NoopTimeout"), get("Login")), (1, 1, 15));
    assert_eq!(i32::try_from(t["Replacement"].clone()).unwrap(), 120);
    tgt.kill();
    wait_until(soon(), "State reconnecting", || sessions(&bus).contains("reconnecting"));
    tgt.restart_with(&[spec]);
    wait_until(Instant::now() + Duration::from_secs(60), "State logged-in again", || sessions(&bus).contains("logged-in"));
    let o = ctl(&bus, &["logout", "--all"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
