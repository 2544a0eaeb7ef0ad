//! Tests of the harness itself against the real tgtd, with libiscsi's tools as the initiator:
//! if these fail, every other integration test's verdict is in doubt.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lunlink_tests::{
    free_loopback_port, iscsi_ls, iscsi_ls_size_label, parse_iscsi_ls, poll_until, require_tools,
    reserve_loopback_port, run_with_timeout, tool_path, wait_until, Bus, ListedTarget, TargetSpec,
    Tgtd, LOCK_DIR,
};

const MIB: u64 = 1024 * 1024;

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn listing(url: &str) -> Vec<ListedTarget> {
    let out = iscsi_ls(url);
    assert!(out.success(), "iscsi-ls {url} failed: {}", out.describe());
    parse_iscsi_ls(&out.stdout)
}

fn find<'a>(targets: &'a [ListedTarget], iqn: &str) -> &'a ListedTarget {
    targets
        .iter()
        .find(|t| t.iqn == iqn)
        .unwrap_or_else(|| panic!("iscsi-ls does not list {iqn}: {targets:?}"))
}

/// Kills a helper process (iscsi-perf) even when the test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_instances_start_at_once_on_their_own_ports() {
    let spawn = |name: &'static str| {
        std::thread::spawn(move || {
            Tgtd::start_with(&[TargetSpec::new(1, &format!("iqn.2024-01.test:{name}")).null_lun(1)])
        })
    };
    let (a, b) = (spawn("first"), spawn("second"));
    let a = a.join().expect("first tgtd failed to start");
    let b = b.join().expect("second tgtd failed to start");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.control_number(), b.control_number());
    for (t, own, other) in [(&a, "first", "second"), (&b, "second", "first")] {
        assert_eq!(t.portal(), format!("127.0.0.1:{}", t.port()));
        assert_eq!(
            t.portals().unwrap(),
            vec![t.portal().parse().unwrap()],
            "only loopback"
        );
        let seen = listing(&format!("iscsi://{}", t.portal()));
        let iqns: Vec<&str> = seen.iter().map(|x| x.iqn.as_str()).collect();
        assert_eq!(
            iqns,
            [format!("iqn.2024-01.test:{own}")],
            "instance must not show {other}"
        );
        assert_eq!(seen[0].portal, format!("{},1", t.portal()));
    }
}

#[test]
fn iscsi_ls_sees_three_targets_and_their_lun_sizes() {
    let specs = [
        TargetSpec::new(1, "iqn.2024-01.test:one")
            .file_lun(1, 64 * MIB)
            .file_lun(2, 10 * MIB + 1536),
        TargetSpec::new(2, "iqn.2024-01.test:two").null_lun(1),
        TargetSpec::new(3, "iqn.2024-01.test:three")
            .file_lun(1, 5_000_000)
            .file_lun(4, MIB),
    ];
    let t = Tgtd::start_with(&specs);
    let seen = listing(&format!("iscsi://{}", t.portal()));
    assert_eq!(seen.len(), 3, "{seen:?}");
    for spec in &specs {
        let listed = find(&seen, &spec.iqn);
        assert_eq!(listed.portal, format!("{},1", t.portal()));
        // LUN 0 is tgtd's controller LUN, then the LUNs we made, in order.
        let mut want = vec![(0, "STORAGE_ARRAY_CONTROLLER".to_owned(), None)];
        for lun in &spec.luns {
            let (n, bytes) = match *lun {
                lunlink_tests::LunSpec::File { lun, size_bytes } => (lun, size_bytes),
                lunlink_tests::LunSpec::Null { lun } => (lun, 1 << 40),
            };
            want.push((
                n,
                "DIRECT_ACCESS".to_owned(),
                Some(iscsi_ls_size_label(bytes, 512)),
            ));
        }
        let got: Vec<_> = listed
            .luns
            .iter()
            .map(|l| (l.lun, l.kind.clone(), l.size.clone()))
            .collect();
        assert_eq!(got, want, "LUNs of {}", spec.iqn);
    }
    // The exact size, from READ CAPACITY(16): whole 512-byte blocks of the 5 000 000-byte file.
    let rc16 = run_with_timeout(
        Command::new(tool_path("iscsi-readcapacity16")).arg(t.url("iqn.2024-01.test:three", 1)),
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(rc16.success(), "{}", rc16.describe());
    assert!(
        rc16.stdout.contains("Total size:4999680"),
        "{}",
        rc16.stdout
    );
    // Backing files are sparse files of the requested size in the instance's dir.
    let path = t.lun_file_path(1, 1);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(path.starts_with(t.dir()));
    assert_eq!(meta.len(), 64 * MIB);
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < MIB,
        "backing file should be sparse"
    );
}

#[test]
fn one_way_chap_is_enforced() {
    let t = Tgtd::start_with(&[
        TargetSpec::new(1, "iqn.2024-01.test:locked")
            .file_lun(1, 4 * MIB)
            .chap("alice", "alicesecret1"),
        TargetSpec::new(2, "iqn.2024-01.test:open").null_lun(1),
    ]);
    let port = t.port();

    let anonymous = iscsi_ls(&format!("iscsi://127.0.0.1:{port}"));
    assert!(
        !anonymous.success() && !anonymous.timed_out(),
        "{}",
        anonymous.describe()
    );
    // iscsi-ls reports a failed login of one target on stdout, amid the listing.
    assert!(
        anonymous.stdout.contains("Authentication failure"),
        "{}",
        anonymous.describe()
    );
    let seen = parse_iscsi_ls(&anonymous.stdout);
    assert!(
        find(&seen, "iqn.2024-01.test:locked").luns.is_empty(),
        "no LUNs without CHAP"
    );

    let wrong = iscsi_ls(&format!("iscsi://alice%wrongsecret1@127.0.0.1:{port}"));
    assert!(
        !wrong.success(),
        "a wrong secret must not log in: {}",
        wrong.describe()
    );

    let seen = listing(&format!("iscsi://alice%alicesecret1@127.0.0.1:{port}"));
    assert_eq!(
        find(&seen, "iqn.2024-01.test:locked").luns.len(),
        2,
        "{seen:?}"
    );
    assert_eq!(
        find(&seen, "iqn.2024-01.test:open").luns.len(),
        2,
        "{seen:?}"
    );
}

#[test]
fn discovery_chap_and_mutual_chap() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, "iqn.2024-01.test:mutual")
        .null_lun(1)
        .chap("bob", "bobsecret123")
        .mutual_chap("tgt", "targetsecret")]);
    t.bind_discovery_account("bob").unwrap();
    t.bind_discovery_outgoing("tgt").unwrap();
    let port = t.port();

    let anonymous = iscsi_ls(&format!("iscsi://127.0.0.1:{port}"));
    assert!(
        !anonymous.success(),
        "discovery without CHAP must fail: {}",
        anonymous.describe()
    );
    assert!(
        parse_iscsi_ls(&anonymous.stdout).is_empty(),
        "{}",
        anonymous.describe()
    );

    let good = format!(
        "iscsi://bob%bobsecret123@127.0.0.1:{port}/?target_user=tgt&target_password=targetsecret"
    );
    let seen = listing(&good);
    assert_eq!(
        find(&seen, "iqn.2024-01.test:mutual").luns.len(),
        2,
        "{seen:?}"
    );

    // The target cannot prove itself with a secret the initiator does not expect.
    let bad = format!(
        "iscsi://bob%bobsecret123@127.0.0.1:{port}/?target_user=tgt&target_password=wrongsecret1"
    );
    let out = iscsi_ls(&bad);
    assert!(
        !out.success(),
        "mutual CHAP with a wrong target secret must fail: {}",
        out.describe()
    );
    assert!(out.describe().contains("CHAP"), "{}", out.describe());
}

#[test]
fn kill_and_restart_keep_port_number_and_lun_data() {
    let spec = TargetSpec::new(1, "iqn.2024-01.test:reboot").file_lun(1, 2 * MIB);
    let mut t = Tgtd::start_with(std::slice::from_ref(&spec));
    let (port, ctl) = (t.port(), t.control_number());
    let url = format!("iscsi://{}", t.portal());
    assert_eq!(listing(&url).len(), 1);

    let path = t.lun_file_path(1, 1);
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(4096)).unwrap();
    f.write_all(b"survives a target reboot").unwrap();
    drop(f);

    t.kill();
    assert!(!t.is_running());
    assert!(t.pid().is_none());
    let down = iscsi_ls(&url);
    assert!(
        !down.success(),
        "a killed target must not answer: {}",
        down.describe()
    );
    let err = t.tgtadm(&["--op", "show", "--mode", "sys"]).unwrap_err();
    assert!(err.command.contains(&format!("-C {ctl}")), "{err}");

    t.restart_with(std::slice::from_ref(&spec));
    assert!(t.is_running());
    assert_eq!((t.port(), t.control_number()), (port, ctl));
    let seen = listing(&url);
    assert_eq!(
        find(&seen, "iqn.2024-01.test:reboot").luns.len(),
        2,
        "{seen:?}"
    );

    let mut data = vec![0u8; 24];
    let mut f = std::fs::File::open(&path).unwrap();
    f.seek(SeekFrom::Start(4096)).unwrap();
    f.read_exact(&mut data).unwrap();
    assert_eq!(&data, b"survives a target reboot");
    assert_eq!(f.metadata().unwrap().len(), 2 * MIB);

    // Restarting a running instance works too, and each start is marked in the log.
    t.restart();
    assert_eq!(t.port(), port);
    let log = std::fs::read_to_string(t.log_path()).unwrap();
    assert_eq!(
        log.matches("=== lunlink-tests: start #").count(),
        3,
        "{log}"
    );
}

#[test]
fn sigstop_silences_the_target_and_sigcont_resumes_it() {
    let mut t = Tgtd::start_with(&[TargetSpec::new(1, "iqn.2024-01.test:frozen").null_lun(1)]);
    t.set_tgtadm_timeout(Duration::from_secs(1));
    t.sigstop();
    let err = t.tgtadm(&["--op", "show", "--mode", "sys"]).unwrap_err();
    assert!(err.problem.contains("no answer within"), "{err}");
    let out = run_with_timeout(
        Command::new(tool_path("iscsi-ls")).arg(format!("iscsi://{}", t.portal())),
        Duration::from_secs(3),
    )
    .unwrap();
    assert!(
        !out.success(),
        "a stopped target must not answer a login: {}",
        out.describe()
    );
    t.sigcont();
    t.set_tgtadm_timeout(Duration::from_secs(10));
    assert_eq!(listing(&format!("iscsi://{}", t.portal())).len(), 1);
}

#[test]
fn connections_are_listed_and_dropped() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, "iqn.2024-01.test:conns").null_lun(1)]);
    assert_eq!(t.show_conns(1).unwrap(), vec![]);
    let perf = Command::new(tool_path("iscsi-perf"))
        .args(["-t", "60", "-m", "1", "-b", "8"])
        .arg(t.url("iqn.2024-01.test:conns", 1))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let perf = KillOnDrop(perf);
    wait_until(soon(20), "iscsi-perf's session", || {
        t.show_conns(1).is_ok_and(|c| !c.is_empty())
    });
    // Freeze the initiator so it neither loads the machine nor reconnects behind our back.
    let pid = libc::pid_t::try_from(perf.0.id()).unwrap();
    // SAFETY: plain integers; `pid` is our unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let conns = t.show_conns(1).unwrap();
    assert_eq!(conns.len(), 1, "{conns:?}");
    let (sid, cid) = conns[0];
    assert_eq!(cid, 0);

    t.delete_conn(1, sid, cid).unwrap();
    wait_until(soon(20), "tgtd to drop the connection", || {
        t.show_conns(1).is_ok_and(|c| !c.contains(&(sid, cid)))
    });
    let err = t.delete_conn(1, sid + 1000, 0).unwrap_err();
    assert!(err.stderr.contains("can't find the session"), "{err}");
    drop(perf);
}

#[test]
fn target_state_lun_state_and_parameters_change() {
    let t = Tgtd::start_with(&[
        TargetSpec::new(1, "iqn.2024-01.test:switch")
            .file_lun(1, MIB)
            .param("MaxRecvDataSegmentLength", "65536"),
        TargetSpec::new(2, "iqn.2024-01.test:other").null_lun(1),
    ]);
    let url = format!("iscsi://{}", t.portal());

    let params = t.target_params(1).unwrap();
    assert!(
        params.contains(&("MaxRecvDataSegmentLength".into(), "65536".into())),
        "{params:?}"
    );
    assert!(
        params.contains(&("HeaderDigest".into(), "None".into())),
        "{params:?}"
    );
    t.set_target_param(1, "HeaderDigest", "CRC32C").unwrap();
    t.set_target_param(1, "DataDigest", "CRC32C").unwrap();
    let params = t.target_params(1).unwrap();
    assert!(
        params.contains(&("HeaderDigest".into(), "CRC32C".into())),
        "{params:?}"
    );
    assert!(
        params.contains(&("DataDigest".into(), "CRC32C".into())),
        "{params:?}"
    );
    let err = t.set_target_param(1, "NoSuchKey", "1").unwrap_err();
    assert!(
        !err.stderr.trim().is_empty() && err.to_string().contains("NoSuchKey"),
        "{err}"
    );

    t.set_target_state(1, "offline").unwrap();
    assert!(t.show_target(1).unwrap().contains("State: offline"));
    let out = iscsi_ls(&url);
    let seen = parse_iscsi_ls(&out.stdout);
    assert!(
        seen.iter()
            .all(|x| x.iqn != "iqn.2024-01.test:switch" || x.luns.is_empty()),
        "an offline target must not log anyone in: {}",
        out.describe()
    );
    t.set_target_state(1, "ready").unwrap();
    assert!(t.show_target(1).unwrap().contains("State: ready"));
    assert_eq!(
        find(&listing(&url), "iqn.2024-01.test:switch").luns.len(),
        2
    );

    t.lun_online(1, 1, false).unwrap();
    let block = t.show_target(1).unwrap();
    let lun1 = block.split("LUN: 1").nth(1).unwrap();
    assert!(lun1.contains("Online: No"), "{block}");
    t.lun_online(1, 1, true).unwrap();
    let block = t.show_target(1).unwrap();
    assert!(
        block
            .split("LUN: 1")
            .nth(1)
            .unwrap()
            .contains("Online: Yes"),
        "{block}"
    );

    let dup = t.add_target(2, "iqn.2024-01.test:dup").unwrap_err();
    assert!(dup.stderr.contains("already exists"), "{dup}");
    assert!(t.show_target(9).is_err());
}

#[test]
fn extra_loopback_portals_and_nothing_else() {
    let spec = TargetSpec::new(1, "iqn.2024-01.test:multi").null_lun(1);
    let mut t = Tgtd::start_with(std::slice::from_ref(&spec));
    let port = t.port();
    t.add_portal(&format!("127.0.0.2:{port}")).unwrap();
    t.add_portal(&format!("[::1]:{port}")).unwrap();
    for addr in [
        "10.1.2.3:3260",
        "0.0.0.0:3260",
        "[::]:3260",
        "localhost:3260",
    ] {
        let err = t.add_portal(addr).unwrap_err();
        assert!(
            err.stderr.is_empty(),
            "{addr} must be refused before tgtadm runs: {err}"
        );
    }
    let check = |t: &Tgtd| {
        for host in ["127.0.0.2", "[::1]"] {
            let seen = listing(&format!("iscsi://{host}:{port}"));
            // tgtd answers SendTargets with the portal that was contacted.
            assert_eq!(
                find(&seen, "iqn.2024-01.test:multi").portal,
                format!("{host}:{port},1")
            );
        }
        let mut portals: Vec<String> = t
            .portals()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        portals.sort();
        assert_eq!(
            portals,
            [
                format!("127.0.0.1:{port}"),
                format!("127.0.0.2:{port}"),
                format!("[::1]:{port}")
            ]
        );
    };
    check(&t);
    t.restart_with(std::slice::from_ref(&spec));
    check(&t);
}

#[test]
fn drop_kills_tgtd_and_cleans_up() {
    let t = Tgtd::start_with(&[TargetSpec::new(1, "iqn.2024-01.test:gone").file_lun(1, MIB)]);
    let pid = libc::pid_t::try_from(t.pid().unwrap()).unwrap();
    let dir = t.dir().to_owned();
    let ctl = t.control_number();
    let url = format!("iscsi://{}", t.portal());
    assert!(dir.join("tgtd.log").exists());
    assert!(Path::new(&format!("{LOCK_DIR}/tgtd-{ctl}.lock")).exists());
    drop(t);
    assert!(!dir.exists(), "temp dir left behind");
    assert!(!Path::new(&format!("/run/tgtd/socket.{ctl}")).exists());
    assert!(
        !Path::new(&format!("{LOCK_DIR}/tgtd-{ctl}.lock")).exists(),
        "control number still reserved"
    );
    // SAFETY: signal 0 only checks for existence.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "tgtd still running");
    assert!(!iscsi_ls(&url).success());
}

#[test]
fn private_bus_answers_and_goes_away() {
    require_tools(&["dbus-send"]);
    let a = Bus::start();
    let b = Bus::start();
    assert_ne!(a.address(), b.address());
    assert!(
        a.address().starts_with("unix:path=")
            && a.address()
                .contains(&a.socket_path().to_string_lossy().into_owned())
    );
    let out = run_with_timeout(
        Command::new(tool_path("dbus-send"))
            .arg(format!("--bus={}", a.address()))
            .args([
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
            ])
            .arg("org.freedesktop.DBus.ListNames"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("string \"org.freedesktop.DBus\""),
        "{}",
        out.stdout
    );
    let dir = a.dir().to_owned();
    drop(a);
    assert!(!dir.exists());
    assert!(b.socket_path().exists());
}

#[test]
#[should_panic(expected = "missing tool no-such-tool-lunlink: run scripts/install-deps")]
fn a_missing_tool_fails_loudly() {
    require_tools(&["sh", "no-such-tool-lunlink"]);
}

#[test]
#[should_panic(expected = "timed out waiting for the impossible")]
fn wait_until_names_what_it_waited_for() {
    wait_until(
        Instant::now() + Duration::from_millis(50),
        "the impossible",
        || false,
    );
}

#[test]
fn polling_stops_as_soon_as_the_condition_holds() {
    let mut calls = 0;
    assert!(poll_until(soon(10), || {
        calls += 1;
        calls == 3
    }));
    assert_eq!(calls, 3);
    assert!(!poll_until(Instant::now(), || false));
}

#[test]
fn leased_ports_are_bindable_and_locked_against_other_users() {
    let lease = reserve_loopback_port();
    let lock = format!("{LOCK_DIR}/port-{}.lock", lease.port());
    let f = std::fs::File::open(&lock).unwrap();
    // SAFETY: valid descriptor for the life of `f`.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_ne!(rc, 0, "a leased port's lock must be held");
    std::net::TcpListener::bind(("127.0.0.1", lease.port()))
        .expect("a leased port is free to bind");
    drop(lease);
    assert!(!Path::new(&lock).exists());
    let p = free_loopback_port();
    std::net::TcpListener::bind(("127.0.0.1", p)).expect("free_loopback_port gives a free port");
}
