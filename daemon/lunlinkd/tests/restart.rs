//! What lunlinkd keeps across restarts, and what it refuses at start: default credentials set
//! over D-Bus, the initiator name, and a config file with an unknown key.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use lunlink_dbus::zvariant::Value;
use lunlink_tests::{run_with_timeout, Bus, Tgtd};

const USER: &str = "alice";
const SECRET: &str = "s3cret-alice-12";
const DISC_USER: &str = "disco";
const DISC_SECRET: &str = "s3cret-disco-34";

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn default_auth_is_kept_across_restarts_and_never_read_back() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:defaults").unwrap();
    tgt.add_lun_file(1, 1, 1 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    tgt.add_account(USER, SECRET).unwrap();
    tgt.bind_account(1, USER).unwrap();
    // Discovery needs its own CHAP account too.
    tgt.add_account(DISC_USER, DISC_SECRET).unwrap();
    tgt.bind_discovery_account(DISC_USER).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let conn = run(&rt, connect(&bus));

    run(&rt, async {
        let m = manager(&conn).await;
        assert_eq!(m.default_auth_method().await.unwrap(), "none");
        // Without discovery credentials the target refuses SendTargets.
        let e = m.discover(&tgt.portal(), &no_opts()).await.unwrap_err();
        assert!(matches!(e, lunlink_dbus::Error::AuthenticationFailed(_)), "{e:?}");

        let watching = manager_watching(&conn).await;
        let mut user_changed = watching.receive_default_username_changed().await;
        let session_creds = opts(&[("username", Value::from(USER)), ("password", Value::from(SECRET))]);
        m.set_default_auth("session", &session_creds).await.unwrap();
        let disc_creds = opts(&[("username", Value::from(DISC_USER)), ("password", Value::from(DISC_SECRET))]);
        m.set_default_auth("discovery", &disc_creds).await.unwrap();
        // Signalled, as every property change is.
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let c = tokio::time::timeout_at(end, futures_lite_stream::next(&mut user_changed))
                .await
                .expect("PropertiesChanged for DefaultUsername")
                .unwrap();
            if c.get().await.unwrap() == USER {
                break;
            }
        }
        assert_eq!(m.default_auth_method().await.unwrap(), "chap");
        assert_eq!(m.discovery_username().await.unwrap(), DISC_USER);
    });

    // Kept in a private file in the state dir.
    let file = dirs.state.join("default-auth.toml");
    assert_eq!(mode(&file), 0o600, "{} holds secrets", file.display());
    assert_eq!(mode(&dirs.state), 0o700);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(USER) && text.contains(DISC_USER), "{text}");

    d.stop();
    let d = Daemon::start(&bus, &dirs);
    let conn = run(&rt, connect(&bus));
    run(&rt, async {
        let m = manager(&conn).await;
        assert_eq!(m.default_auth_method().await.unwrap(), "chap");
        assert_eq!(m.default_username().await.unwrap(), USER);
        assert_eq!(m.discovery_auth_method().await.unwrap(), "chap");
        assert_eq!(m.discovery_username().await.unwrap(), DISC_USER);
        // The stored secrets are the ones used: discovery and login both need them.
        m.discover(&tgt.portal(), &no_opts()).await.unwrap();
        let s = m.login("iqn.2024-01.test:defaults", "", &no_opts()).await.unwrap();
        assert_eq!(session(&conn, &s).await.state().await.unwrap(), "logged-in");
        // A node without settings of its own shows the defaults it follows.
        let n = node(&conn, &session(&conn, &s).await.node().await.unwrap()).await;
        assert_eq!((n.auth_method().await.unwrap(), n.username().await.unwrap()), ("chap".into(), USER.into()));

        // No secret readable through any property.
        let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
            .destination(lunlink_dbus::BUS_NAME)
            .unwrap()
            .path(lunlink_dbus::ROOT_PATH)
            .unwrap()
            .build()
            .await
            .unwrap();
        let objects = format!("{:?}", om.get_managed_objects().await.unwrap());
        let props = zbus::fdo::PropertiesProxy::builder(&conn)
            .destination(lunlink_dbus::BUS_NAME)
            .unwrap()
            .path(lunlink_dbus::ROOT_PATH)
            .unwrap()
            .build()
            .await
            .unwrap();
        let manager_props = format!(
            "{:?}",
            props.get_all(zbus::names::InterfaceName::from_static_str_unchecked(lunlink_dbus::MANAGER_INTERFACE)).await.unwrap()
        );
        for text in [&objects, &manager_props] {
            assert!(!text.contains(SECRET) && !text.contains(DISC_SECRET), "a secret is readable over D-Bus");
        }
        m.logout(&s, &no_opts()).await.unwrap();

        // Turning CHAP off is kept too, and forgets the credentials.
        m.set_default_auth("session", &opts(&[("auth-method", Value::from("none"))])).await.unwrap();
        assert_eq!(m.default_username().await.unwrap(), "");
    });
    let status = ok(&ctl(&bus, &["--json", "status"]));
    assert!(!status.contains(SECRET) && !status.contains(DISC_SECRET), "{status}");
    d.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(SECRET), "the session secret is forgotten once CHAP is off");
    assert!(text.contains(DISC_SECRET), "the discovery defaults are untouched");
    let d = Daemon::start(&bus, &dirs);
    let status = json(&ctl(&bus, &["--json", "status"]));
    assert_eq!(status["default_auth_method"], "none", "{status}");
    assert_eq!(status["discovery_username"], DISC_USER, "{status}");
    d.stop();
    let log = dirs.log_text();
    assert!(!log.contains(SECRET) && !log.contains(DISC_SECRET), "a secret leaked into the daemon log");
}

#[test]
fn a_damaged_defaults_file_is_reported_and_the_config_applies() {
    let bus = Bus::start();
    let dirs = Dirs::new();
    std::fs::create_dir_all(&dirs.state).unwrap();
    let file = dirs.state.join("default-auth.toml");
    std::fs::write(&file, "[session]\nmethod = \"chap\"\nusername = \"u\"\n").unwrap();
    let config = dirs.config("[auth.session]\nmethod = \"chap\"\nusername = \"from-config\"\npassword = \"config-secret-1\"\n");
    let d = Daemon::start_with(&bus, &dirs, Some(&config));
    let status = json(&ctl(&bus, &["--json", "status"]));
    assert_eq!(status["default_username"], "from-config", "{status}");
    d.stop();
    let log = dirs.log_text();
    assert!(log.contains("default-auth.toml") && log.contains("password"), "the file and the problem are named:\n{log}");
}

#[test]
fn the_initiator_name_stays_the_same_across_restarts() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:name").unwrap();
    tgt.add_lun_file(1, 1, 1 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let rt = runtime();

    let d = Daemon::start(&bus, &dirs);
    let conn = run(&rt, connect(&bus));
    let first = run(&rt, async { manager(&conn).await.initiator_name().await.unwrap() });
    assert!(first.starts_with("iqn.") && first.contains(':'), "a generated IQN: {first}");
    d.stop();

    let d = Daemon::start(&bus, &dirs);
    let conn = run(&rt, connect(&bus));
    let second = run(&rt, async { manager(&conn).await.initiator_name().await.unwrap() });
    assert_eq!(first, second);
    let status = json(&ctl(&bus, &["--json", "status"]));
    assert_eq!(status["initiator_name"], first.as_str());

    // The target sees that name at login.
    ok(&ctl(&bus, &["discover", &tgt.portal()]));
    ok(&ctl(&bus, &["login", "iqn.2024-01.test:name"]));
    let shown = tgt.show_target(1).unwrap();
    assert!(shown.contains(&first), "tgtd shows the initiator name {first}:\n{shown}");
    d.stop();
}

#[test]
fn an_unknown_config_key_stops_the_daemon_naming_file_line_and_key() {
    let dirs = Dirs::new();
    let config = dirs.config("[timeouts]\nlogin = 3\nnoop_intreval = 5\n");
    // No bus is needed: the config is read first. The address would fail if it were used.
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_lunlinkd"))
            .args(["--bus", "unix:path=/nonexistent/bus.sock", "--state-dir"])
            .arg(&dirs.state)
            .arg("--config")
            .arg(&config),
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(!out.timed_out() && !out.success(), "lunlinkd must refuse to start: {}", out.describe());
    let err = out.stderr;
    assert!(err.contains(&config.display().to_string()), "names the file: {err}");
    assert!(err.contains("line 3"), "names the line: {err}");
    assert!(err.contains("noop_intreval"), "names the key: {err}");
    assert!(!dirs.state.join("initiator-name").exists(), "nothing is written before the config is accepted");
}
