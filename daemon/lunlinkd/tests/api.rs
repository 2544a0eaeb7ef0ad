//! The D-Bus API end to end: a private bus, a real tgtd, the real lunlinkd, driven through the
//! `lunlink_dbus` proxies (and lunlinkctl where its messages and exit codes matter).

mod common;

use std::time::{Duration, Instant};

use common::*;
use lunlink_dbus::names::{LUN_INTERFACE, NODE_INTERFACE, NO_OBJECT_PATH, ROOT_PATH, SESSION_INTERFACE};
use lunlink_dbus::zvariant::{OwnedObjectPath, Value};
use lunlink_dbus::{Error, BUS_NAME};
use lunlink_tests::{reserve_loopback_port, Bus, Tgtd};

const USER: &str = "alice";
const SECRET: &str = "s3cret-alice-12";
const TARGET_USER: &str = "tgt-bob";
const TARGET_SECRET: &str = "s3cret-bob-345";
const WRONG: &str = "wrong-secret-99";

/// The message of an `InvalidArgument`, or a panic naming what came instead.
#[track_caller]
fn invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

async fn object_manager(conn: &zbus::Connection) -> zbus::fdo::ObjectManagerProxy<'static> {
    zbus::fdo::ObjectManagerProxy::builder(conn)
        .destination(BUS_NAME)
        .unwrap()
        .path(ROOT_PATH)
        .unwrap()
        .build()
        .await
        .unwrap()
}

#[test]
fn mutual_chap_through_the_daemon() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:mutual").unwrap();
    tgt.add_lun_file(1, 1, 4 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    tgt.add_account(USER, SECRET).unwrap();
    tgt.bind_account(1, USER).unwrap();
    tgt.add_account(TARGET_USER, TARGET_SECRET).unwrap();
    tgt.bind_outgoing(1, TARGET_USER).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let conn = run(&rt, connect(&bus));

    run(&rt, async {
        let m = manager(&conn).await;
        let found = m.discover(&tgt.portal(), &no_opts()).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");

        // Mutual CHAP stored on the node, then a login with no options.
        let node_path = m.create_node("iqn.2024-01.test:mutual", &tgt.portal(), &no_opts()).await.unwrap();
        let n = node(&conn, &node_path).await;
        let creds = opts(&[
            ("username", Value::from(USER)),
            ("password", Value::from(SECRET)),
            ("reverse-username", Value::from(TARGET_USER)),
            ("reverse-password", Value::from(TARGET_SECRET)),
        ]);
        assert_eq!(n.update(&creds).await.unwrap(), "now", "not logged in: settings apply now");
        assert_eq!(n.auth_method().await.unwrap(), "chap");
        assert_eq!(n.username().await.unwrap(), USER);
        assert_eq!(n.reverse_username().await.unwrap(), TARGET_USER);
        let s = n.login(&no_opts()).await.unwrap();
        assert_eq!(session(&conn, &s).await.state().await.unwrap(), "logged-in");
        m.logout(&s, &no_opts()).await.unwrap();

        // The target proves a different secret than the one we expect: refused, by name.
        let wrong = opts(&[("reverse-password", Value::from(WRONG))]);
        let e = m.login("iqn.2024-01.test:mutual", "", &wrong).await.unwrap_err();
        let Error::AuthenticationFailed(msg) = &e else { panic!("expected AuthenticationFailed, got {e:?}") };
        assert!(msg.contains("iqn.2024-01.test:mutual"), "the message names the target: {msg}");
        assert_eq!(n.session().await.unwrap().as_str(), NO_OBJECT_PATH, "no session after a refused login");

        // The override was for that login only: the stored settings still work.
        let s = m.login("iqn.2024-01.test:mutual", "", &no_opts()).await.unwrap();
        assert_eq!(session(&conn, &s).await.state().await.unwrap(), "logged-in");
        m.logout(&s, &no_opts()).await.unwrap();

        // No secret in any property of any object.
        let all = format!("{:?}", object_manager(&conn).await.get_managed_objects().await.unwrap());
        for secret in [SECRET, TARGET_SECRET, WRONG] {
            assert!(!all.contains(secret), "a secret shows in the properties");
        }
    });

    // lunlinkctl says so too, with the authentication exit code.
    let o = ctl_stdin(
        &bus,
        &["login", "iqn.2024-01.test:mutual", "--auth-file", "-"],
        &format!("username={USER}\npassword={SECRET}\nreverse-username={TARGET_USER}\nreverse-password={WRONG}\n"),
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).to_lowercase().contains("authentication"), "{}", stderr(&o));
    d.stop();
    let log = dirs.log_text();
    for secret in [SECRET, TARGET_SECRET, WRONG] {
        assert!(!log.contains(secret), "a secret leaked into the daemon log");
    }
}

#[test]
fn signals_for_login_and_logout() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:signals").unwrap();
    tgt.add_lun_file(1, 1, 4 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let conn = run(&rt, connect(&bus));
    let limit = Duration::from_secs(10);

    run(&rt, async {
        let m = manager(&conn).await;
        let om = object_manager(&conn).await;
        let mut added = om.receive_interfaces_added().await.unwrap();
        let mut removed = om.receive_interfaces_removed().await.unwrap();

        // Discovery: the node appears with its properties.
        m.discover(&tgt.portal(), &no_opts()).await.unwrap();
        let node_added = next_matching(&mut added, limit, "InterfacesAdded for the node", |s| {
            s.args().is_ok_and(|a| a.interfaces_and_properties().contains_key(NODE_INTERFACE))
        })
        .await;
        let args = node_added.args().unwrap();
        let node_path = OwnedObjectPath::from(args.object_path().clone());
        let props = &args.interfaces_and_properties()[NODE_INTERFACE];
        assert_eq!(props["Target"], Value::from("iqn.2024-01.test:signals"));
        assert_eq!(props["Session"], Value::from(lunlink_dbus::zvariant::ObjectPath::from_static_str_unchecked("/")));

        let mut node_session = node_watching(&conn, &node_path).await.receive_session_changed().await;

        // Login: Session and LUN objects are added, and the node points at the session.
        let s = m.login("iqn.2024-01.test:signals", "", &no_opts()).await.unwrap();
        // The reply comes after the objects are served: usable at once.
        let sp = session(&conn, &s).await;
        assert_eq!(sp.state().await.unwrap(), "logged-in");
        let session_added = next_matching(&mut added, limit, "InterfacesAdded for the session", |sig| {
            sig.args().is_ok_and(|a| a.object_path().as_str() == s.as_str())
        })
        .await;
        let args = session_added.args().unwrap();
        let props = &args.interfaces_and_properties()[SESSION_INTERFACE];
        assert_eq!(props["State"], Value::from("logged-in"));
        assert_eq!(props["Target"], Value::from("iqn.2024-01.test:signals"));
        let lun_added = next_matching(&mut added, limit, "InterfacesAdded for the LUN", |sig| {
            sig.args().is_ok_and(|a| a.interfaces_and_properties().contains_key(LUN_INTERFACE))
        })
        .await;
        let lun_path = OwnedObjectPath::from(lun_added.args().unwrap().object_path().clone());
        assert_eq!(lun(&conn, &lun_path).await.size().await.unwrap(), 4 << 20);
        wait_session_property(&mut node_session, s.as_str(), "Node.Session to point at the session").await;
        assert_eq!(sp.luns().await.unwrap(), vec![lun_path.clone()]);

        // Logout: LUN and session objects go, the node points nowhere again.
        m.logout(&s, &no_opts()).await.unwrap();
        // The LUN's logical unit goes with its last path.
        let mut gone = Vec::new();
        while gone.len() < 3 {
            let sig = next_matching(&mut removed, limit, "InterfacesRemoved", |_| true).await;
            let a = sig.args().unwrap();
            gone.push((a.object_path().to_string(), a.interfaces().iter().map(|i| i.to_string()).collect::<Vec<_>>()));
        }
        assert!(gone.contains(&(s.to_string(), vec![SESSION_INTERFACE.to_owned()])), "{gone:?}");
        assert!(gone.contains(&(lun_path.to_string(), vec![LUN_INTERFACE.to_owned()])), "{gone:?}");
        assert!(gone.iter().any(|(p, i)| p.contains("/lu/") && i == &vec![lunlink_dbus::LOGICAL_UNIT_INTERFACE.to_owned()]), "{gone:?}");
        wait_session_property(&mut node_session, NO_OBJECT_PATH, "Node.Session to go back to /").await;
        assert!(session(&conn, &s).await.state().await.is_err(), "the session object is gone");
    });
    d.stop();
}

/// Waits until a Node.Session change says `want`.
async fn wait_session_property<S>(stream: &mut S, want: &str, what: &str)
where
    S: futures_lite_stream::Stream<Item = zbus::proxy::PropertyChanged<'static, OwnedObjectPath>> + Unpin,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = tokio::time::timeout_at(end, futures_lite_stream::next(stream))
            .await
            .unwrap_or_else(|_| panic!("no PropertiesChanged for {what}"))
            .expect("the property stream ended");
        // The signal carried the value; the proxy answers from its cache.
        if c.get().await.unwrap().as_str() == want {
            return;
        }
    }
}

#[test]
fn update_says_when_it_applies_and_delete_refuses_while_logged_in() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:update").unwrap();
    tgt.add_lun_file(1, 1, 1 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let conn = run(&rt, connect(&bus));

    run(&rt, async {
        let m = manager(&conn).await;
        let node_path = m.create_node("iqn.2024-01.test:update", &tgt.portal(), &no_opts()).await.unwrap();
        let n = node(&conn, &node_path).await;
        let startup = |s: &'static str| opts(&[("startup", Value::from(s))]);
        let digest = opts(&[("header-digest", Value::from(vec!["crc32c", "none"]))]);

        // Not logged in: everything applies now.
        assert_eq!(n.update(&startup("automatic")).await.unwrap(), "now");
        assert_eq!(n.startup().await.unwrap(), "automatic");
        assert_eq!(n.update(&digest).await.unwrap(), "now");

        let s = n.login(&no_opts()).await.unwrap();
        // Logged in: startup still applies now; what is negotiated waits for the next login.
        assert_eq!(n.update(&startup("manual")).await.unwrap(), "now");
        assert_eq!(n.update(&digest).await.unwrap(), "next-login");
        let auth = opts(&[("auth-method", Value::from("none"))]);
        assert_eq!(n.update(&auth).await.unwrap(), "next-login");

        // Delete refuses while logged in, and the node stays.
        let e = n.delete().await.unwrap_err();
        let Error::InUse(msg) = &e else { panic!("expected InUse, got {e:?}") };
        assert!(msg.contains("log out"), "the message says what to do: {msg}");
        assert_eq!(n.target().await.unwrap(), "iqn.2024-01.test:update");

        // After logout it goes, record and object.
        m.logout(&s, &no_opts()).await.unwrap();
        n.delete().await.unwrap();
        let gone = node(&conn, &node_path).await.target().await;
        assert!(gone.is_err(), "the node object is removed before Delete returns: {gone:?}");
    });
    let records = std::fs::read_dir(dirs.state.join("nodes")).unwrap().count();
    assert_eq!(records, 0, "the node record is deleted");
    d.stop();
}

#[test]
fn invalid_arguments_are_refused_with_a_useful_message() {
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let conn = run(&rt, connect(&bus));
    let portal = "127.0.0.1:3260";

    run(&rt, async {
        let m = manager(&conn).await;
        // Bad names.
        let msg = invalid(m.create_node("not-an-iqn", portal, &no_opts()).await);
        assert!(msg.contains("not-an-iqn"), "{msg}");
        let msg = invalid(m.login("iqn.2024-01", "", &no_opts()).await);
        assert!(msg.contains("iqn.2024-01"), "{msg}");
        // Bad portals.
        let msg = invalid(m.discover("1.2.3.4:99999", &no_opts()).await);
        assert!(msg.contains("99999") && msg.contains("port"), "{msg}");
        let msg = invalid(m.create_node("iqn.2024-01.test:x", "1.2.3.4:99999", &no_opts()).await);
        assert!(msg.contains("99999"), "{msg}");
        let msg = invalid(m.create_node("iqn.2024-01.test:x", "fe80::1:3260", &no_opts()).await);
        assert!(msg.contains("bracket"), "{msg}");
        // Unknown option key, wrong type, option of another call, bad value.
        let msg = invalid(m.discover(portal, &opts(&[("colour", Value::from("red"))])).await);
        assert!(msg.contains("colour") && msg.contains("username"), "names the key and the known ones: {msg}");
        let msg = invalid(m.discover(portal, &opts(&[("username", Value::from(5u32))])).await);
        assert!(msg.contains("username") && msg.contains("string"), "{msg}");
        let msg = invalid(m.login_all(&opts(&[("force", Value::from(true))])).await);
        assert!(msg.contains("force") && msg.contains("LoginAll"), "{msg}");
        let msg = invalid(m.create_node("iqn.2024-01.test:x", portal, &opts(&[("startup", Value::from("sometimes"))])).await);
        assert!(msg.contains("sometimes"), "{msg}");
        let msg = invalid(
            m.set_default_auth("session", &opts(&[("auth-method", Value::from("none")), ("username", Value::from(USER))])).await,
        );
        assert!(msg.contains("username") && msg.contains("none"), "{msg}");
        // Half a CHAP setting, an unknown scope, a path that is no session.
        let msg = invalid(m.set_default_auth("session", &opts(&[("username", Value::from(USER))])).await);
        assert!(msg.contains("password"), "{msg}");
        let msg = invalid(m.set_default_auth("everything", &no_opts()).await);
        assert!(msg.contains("session") && msg.contains("discovery"), "{msg}");
        let not_a_session = OwnedObjectPath::try_from(format!("{ROOT_PATH}/node/1")).unwrap();
        invalid(m.logout(&not_a_session, &no_opts()).await);
        // Nothing was created by any of these.
        let objects = object_manager(&conn).await.get_managed_objects().await.unwrap();
        assert!(objects.is_empty(), "{objects:?}");
    });

    // lunlinkctl shows the daemon's reason and exits with the invalid-argument code.
    let o = ctl(&bus, &["node", "create", "iqn.2024-01.test:x", "1.2.3.4:99999"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("99999"), "{}", stderr(&o));
    d.stop();
}

#[test]
fn a_slow_login_blocks_nobody_and_times_out() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:slow").unwrap();
    tgt.add_lun_file(1, 1, 1 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    tgt.add_target(2, "iqn.2024-01.test:other").unwrap();
    tgt.bind_all(2).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let config = dirs.config("[timeouts]\nlogin = 3\n");
    let d = Daemon::start_with(&bus, &dirs, Some(&config));
    ok(&ctl(&bus, &["discover", &tgt.portal()]));
    let rt = runtime();
    let conn = run(&rt, connect(&bus));

    tgt.sigstop();
    let started = Instant::now();
    let login = rt.spawn({
        let conn = conn.clone();
        async move {
            let r = manager(&conn).await.login("iqn.2024-01.test:slow", "", &no_opts()).await;
            (r, started.elapsed())
        }
    });
    // While the login hangs, other callers get their answers, each well within the timeout.
    let mut answers = 0;
    let mut slowest = Duration::ZERO;
    while !login.is_finished() && started.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let status = json(&ctl(&bus, &["--json", "status"]));
        assert_eq!(status["nodes"], 2, "{status}");
        let nodes = ok(&ctl(&bus, &["--json", "nodes"]));
        assert!(nodes.contains("iqn.2024-01.test:other"), "{nodes}");
        assert!(t.elapsed() < Duration::from_secs(1), "status and nodes took {:?} during a hanging login", t.elapsed());
        slowest = slowest.max(t.elapsed());
        answers += 1;
    }
    assert!(answers >= 1 && !login.is_finished(), "the login must still hang while others are answered");
    // Deleting the node under a running login is refused (it would leave a session without
    // its node), promptly.
    let o = ctl(&bus, &["node", "delete", "iqn.2024-01.test:slow"]);
    assert_eq!(o.status.code(), Some(4), "in-use exit code: {}", stderr(&o));
    assert!(stderr(&o).contains("logging in"), "{}", stderr(&o));
    assert!(!login.is_finished(), "the refusal came while the login was still running");
    let (r, took) = run(&rt, login).unwrap();
    eprintln!("hanging login: {answers} status+nodes rounds answered meanwhile (slowest {slowest:?}); Timeout after {took:?} (login = 3 s)");
    let e = r.unwrap_err();
    let Error::Timeout(msg) = &e else { panic!("expected Timeout, got {e:?}") };
    assert!(msg.contains("iqn.2024-01.test:slow"), "{msg}");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(8),
        "the login gave up after {took:?}, not after the configured 3 s"
    );
    assert!(ok(&ctl(&bus, &["--json", "sessions"])).trim() == "[]", "no session is left behind");

    // Once the target answers again, so does a login.
    tgt.sigcont();
    ok(&ctl(&bus, &["login", "iqn.2024-01.test:slow"]));
    d.stop();
}

#[test]
fn discover_where_nothing_listens_fails_quickly_and_clearly() {
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    // Reserved, so no other test binds it, and never listened on.
    let lease = reserve_loopback_port();
    let portal = format!("127.0.0.1:{}", lease.port());

    let t = Instant::now();
    let o = ctl(&bus, &["discover", &portal]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(7), "target-unreachable exit code: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&portal) && err.to_lowercase().contains("connect"), "{err}");
    assert!(took < Duration::from_secs(3), "a refused connection is reported at once, took {took:?}");
    eprintln!("lunlinkctl discover on a closed port: exit 7 after {took:?}: {}", err.trim());

    let rt = runtime();
    let conn = run(&rt, connect(&bus));
    let e = run(&rt, async { manager(&conn).await.discover(&portal, &no_opts()).await.unwrap_err() });
    assert!(matches!(e, Error::ConnectionFailed(_)), "{e:?}");
    d.stop();
}

#[test]
fn initiator_name_can_change_only_without_sessions() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:rename").unwrap();
    tgt.add_lun_file(1, 1, 8 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let new = "iqn.2026-12.org.example:renamed";
    // A bad name is refused and names the problem.
    let o = ctl(&bus, &["set-initiator-name", "not a name"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // With a session: refused, the name stays.
    ok(&ctl(&bus, &["discover", &tgt.portal()]));
    ok(&ctl(&bus, &["login", "iqn.2024-01.test:rename"]));
    let old = json(&ctl(&bus, &["--json", "status"]))["initiator_name"].as_str().unwrap().to_owned();
    let o = ctl(&bus, &["set-initiator-name", new]);
    assert_eq!(o.status.code(), Some(4), "in use while logged in: {}", stderr(&o));
    assert!(stderr(&o).contains("log them out first"), "{}", stderr(&o));
    assert_eq!(json(&ctl(&bus, &["--json", "status"]))["initiator_name"], old.as_str());
    // Without sessions: changed, signalled, used at the next login, kept across restarts.
    ok(&ctl(&bus, &["logout", "--all"]));
    let rt = runtime();
    let conn = run(&rt, connect(&bus));
    let m = run(&rt, manager_watching(&conn));
    let mut changes = run(&rt, async { m.receive_initiator_name_changed().await });
    ok(&ctl(&bus, &["set-initiator-name", new]));
    let c = run(&rt, async { next_matching(&mut changes, STEP_LIMIT, "InitiatorName changed", |_| true).await });
    assert_eq!(run(&rt, c.get()).unwrap(), new);
    assert_eq!(std::fs::read_to_string(dirs.state.join("initiator-name")).unwrap().trim(), new);
    ok(&ctl(&bus, &["login", "iqn.2024-01.test:rename"]));
    let shown = tgt.show_target(1).unwrap();
    assert!(shown.contains(new), "the target sees the new name:\n{shown}");
    ok(&ctl(&bus, &["logout", "--all"]));
    d.stop();
    let _d = Daemon::start(&bus, &dirs);
    assert_eq!(json(&ctl(&bus, &["--json", "status"]))["initiator_name"], new);
}

#[test]
fn node_timeouts_and_digests_are_set_and_shown() {
    let bus = Bus::start();
    let dirs = Dirs::new();
    let _d = Daemon::start(&bus, &dirs);
    let iqn = "iqn.2024-01.test:node-timeouts";
    ok(&ctl(&bus, &["node", "create", iqn, "127.0.0.1:3260", "--noop-interval", "2", "--replacement-timeout", "-1"]));
    ok(&ctl(&bus, &["node", "update", iqn, "--noop-timeout", "3", "--header-digest", "crc32c,none"]));
    let o = ctl(&bus, &["node", "update", iqn, "--noop-timeout", "99999"]);
    assert_eq!(o.status.code(), Some(2), "out of range: {}", stderr(&o));
    let rt = runtime();
    let conn = run(&rt, connect(&bus));
    let (t, hd, dd) = run(&rt, async {
        let m = manager(&conn).await;
        let path = m.create_node(iqn, "127.0.0.1:3260", &no_opts()).await.unwrap();
        let n = node(&conn, &path).await;
        let props = zbus::fdo::PropertiesProxy::builder(&conn)
            .destination(lunlink_dbus::BUS_NAME)
            .unwrap()
            .path(path.clone())
            .unwrap()
            .build()
            .await
            .unwrap();
        let iface = zbus::names::InterfaceName::from_static_str_unchecked(NODE_INTERFACE);
        let all = props.get_all(iface).await.unwrap();
        let _ = n;
        (all["Timeouts"].clone(), all["HeaderDigest"].clone(), all["DataDigest"].clone())
    });
    let t: std::collections::HashMap<String, lunlink_dbus::zvariant::OwnedValue> = t.try_into().unwrap();
    assert_eq!(u32::try_from(&t["NoopInterval"]).unwrap(), 2);
    assert_eq!(u32::try_from(&t["NoopTimeout"]).unwrap(), 3);
    assert_eq!(i32::try_from(&t["Replacement"]).unwrap(), -1);
    assert!(!t.contains_key("Login"), "unset keys are the config's: {t:?}");
    let hd: Vec<String> = hd.try_into().unwrap();
    assert_eq!(hd, vec!["crc32c".to_owned(), "none".to_owned()]);
    let dd: Vec<String> = dd.try_into().unwrap();
    assert!(dd.is_empty());
    // Kept in the node record.
    let records: String = std::fs::read_dir(dirs.state.join("nodes")).unwrap().flatten().map(|e| std::fs::read_to_string(e.path()).unwrap()).collect();
    assert!(records.contains("noop_interval = 2") && records.contains("replacement = -1"), "{records}");
}
