//! The session engine against a real tgtd started by each test (issue: protocol core and engine).
//! Every test talks to a real target on loopback; nothing here is faked.

use std::time::Duration;

use lunlink_engine::{Auth, ChapAlgorithm, ChapConfig, DataBuf, EngineError, Offer, Portal, Secret, Session, SessionConfig, Timeouts};
use lunlink_proto::login::{Digest, LoginError};

use lunlink_tests::Tgtd;
use rand::{Rng, SeedableRng};

const INITIATOR: &str = "iqn.2024-01.org.lunlink:test";
const T: Duration = Duration::from_secs(60);

fn portal(t: &Tgtd) -> Portal {
    t.portal().parse().expect("portal")
}

fn config(t: &Tgtd, target: &str, auth: Auth, offer: Offer) -> SessionConfig {
    SessionConfig {
        initiator_name: INITIATOR.into(),
        initiator_alias: None,
        target_name: target.into(),
        portal: portal(t),
        auth,
        offer,
        isid: [0x80, 0x12, 0x34, 0x56, 0x78, rand::random()],
        queue_depth: 128,
        timeouts: Timeouts::default(),
    }
}

fn chap(user: &str, secret: &str) -> ChapConfig {
    ChapConfig {
        username: user.into(),
        secret: Secret::new(secret.as_bytes().to_vec()),
        mutual: None,
        algorithms: vec![ChapAlgorithm::Md5],
    }
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f).await.expect("test step timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_every_target() {
    let t = Tgtd::start();
    for tid in 1..=3 {
        t.add_target(tid, &format!("iqn.2024-01.test:disk{tid}")).unwrap();
        t.add_lun_file(tid, 1, 1 << 20).unwrap();
        t.bind_all(tid).unwrap();
    }
    let found = within(lunlink_engine::discover(&portal(&t), INITIATOR, Auth::None, T)).await.unwrap();
    let mut names: Vec<_> = found.iter().map(|d| d.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["iqn.2024-01.test:disk1", "iqn.2024-01.test:disk2", "iqn.2024-01.test:disk3"]);
    for d in &found {
        assert!(!d.portals.is_empty(), "{} has no portal", d.name);
        assert_eq!(d.portals[0].portal.port(), t.port());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_none_report_luns_capacity_logout() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:a").unwrap();
    t.add_lun_file(1, 1, 64 << 20).unwrap();
    t.add_lun_file(1, 2, 8 << 20).unwrap();
    t.bind_all(1).unwrap();
    let s = within(Session::login(config(&t, "iqn.2024-01.test:a", Auth::None, Offer::default()))).await.unwrap();
    let mut luns = within(s.report_luns()).await.unwrap();
    luns.sort();
    assert_eq!(luns, [0, 1, 2], "tgtd always has the controller LUN 0");
    let cap = within(s.read_capacity(1)).await.unwrap();
    assert_eq!((cap.blocks, cap.block_size), ((64 << 20) / 512, 512));
    let cap = within(s.read_capacity(2)).await.unwrap();
    assert_eq!(cap.bytes(), 8 << 20);
    let info = within(s.probe_lun(1)).await.unwrap();
    assert_eq!(info.peripheral_type, 0, "a disk");
    assert!(!info.wwid.is_empty(), "tgtd reports a VPD 0x83 designator");
    within(s.logout()).await.unwrap();
    assert!(!s.is_open());
    let err = within(s.read_capacity(1)).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chap_one_way_and_mutual() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:chap").unwrap();
    t.add_lun_file(1, 1, 1 << 20).unwrap();
    t.bind_all(1).unwrap();
    t.add_account("alice", "alicesecret12").unwrap();
    t.bind_account(1, "alice").unwrap();
    t.add_account("target1", "targetsecret1").unwrap();
    t.bind_outgoing(1, "target1").unwrap();

    // No credentials: refused as an authentication problem, not a hang.
    let err = within(Session::login(config(&t, "iqn.2024-01.test:chap", Auth::None, Offer::default())))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Login(_)), "{err}");

    // One-way CHAP.
    let s = within(Session::login(config(&t, "iqn.2024-01.test:chap", Auth::Chap(chap("alice", "alicesecret12")), Offer::default())))
        .await
        .unwrap();
    within(s.test_unit_ready(1)).await.unwrap();
    within(s.logout()).await.unwrap();

    // Mutual CHAP: the target proves it knows targetsecret1.
    let mut c = chap("alice", "alicesecret12");
    c.mutual = Some(("target1".into(), Secret::new(b"targetsecret1".to_vec())));
    let s = within(Session::login(config(&t, "iqn.2024-01.test:chap", Auth::Chap(c), Offer::default()))).await.unwrap();
    within(s.test_unit_ready(1)).await.unwrap();
    within(s.logout()).await.unwrap();

    // Mutual CHAP where we expect another target secret: we refuse the target.
    let mut c = chap("alice", "alicesecret12");
    c.mutual = Some(("target1".into(), Secret::new(b"not-the-secret".to_vec())));
    let err = within(Session::login(config(&t, "iqn.2024-01.test:chap", Auth::Chap(c), Offer::default())))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Login(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_authentication_error() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:chap").unwrap();
    t.add_lun_file(1, 1, 1 << 20).unwrap();
    t.bind_all(1).unwrap();
    t.add_account("alice", "alicesecret12").unwrap();
    t.bind_account(1, "alice").unwrap();
    let err = within(Session::login(config(&t, "iqn.2024-01.test:chap", Auth::Chap(chap("alice", "wrongsecret12")), Offer::default())))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Login(LoginError::AuthenticationFailed { .. })), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("authentication"), "{err}");
}

/// Writes random data at sizes from 512 B to 16 MiB (beyond MaxBurstLength, so R2T sequences
/// are used) and reads it back, with digests off and on.
async fn write_read_back(digests: bool) {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:data").unwrap();
    t.add_lun_file(1, 1, 64 << 20).unwrap();
    t.bind_all(1).unwrap();
    let mut offer = Offer::default();
    if digests {
        t.set_target_param(1, "HeaderDigest", "CRC32C").unwrap();
        t.set_target_param(1, "DataDigest", "CRC32C").unwrap();
        offer.header_digest = vec![Digest::Crc32c, Digest::None];
        offer.data_digest = vec![Digest::Crc32c, Digest::None];
    }
    let s = within(Session::login(config(&t, "iqn.2024-01.test:data", Auth::None, offer))).await.unwrap();
    assert_eq!(s.info().params.header_digest, digests);
    assert_eq!(s.info().params.data_digest, digests);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut lba = 0u64;
    for size in [512usize, 4096, 65536, 65536 + 512, 262144, 1 << 20, 3 << 20, 16 << 20] {
        let mut data = vec![0u8; size];
        rng.fill(&mut data[..]);
        within(s.write_slice(1, lba, 512, &data, false)).await.unwrap();
        let mut back = vec![0u8; size];
        within(s.read_into(1, lba, 512, &mut back)).await.unwrap();
        assert!(back == data, "data read back differs at size {size}");
        lba += (size / 512) as u64;
        if lba > (40 << 20) / 512 {
            lba = 0;
        }
    }
    within(s.flush(1)).await.unwrap();
    // Large reads went (at least partly) straight from the socket into the buffers.
    let direct = s.stats().bytes_read_direct.load(std::sync::atomic::Ordering::Relaxed);
    let total = s.stats().bytes_read.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("read {total} bytes, {direct} of them straight into the caller's buffers");
    assert!(direct > 0);
    within(s.logout()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_round_trip_without_digests() {
    write_read_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_round_trip_with_crc32c_digests() {
    write_read_back(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_commands_all_correct() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:qd").unwrap();
    t.add_lun_file(1, 1, 32 << 20).unwrap();
    t.bind_all(1).unwrap();
    let s = within(Session::login(config(&t, "iqn.2024-01.test:qd", Auth::None, Offer::default()))).await.unwrap();
    // 256 writes of distinct 8 KiB blocks, 128 at a time at most (the queue depth), then 256
    // concurrent reads checking every block.
    let block = |i: u64| -> Vec<u8> { (0..8192u64).map(|j| ((i * 31 + j * 7) % 251) as u8).collect() };
    let mut tasks = Vec::new();
    for i in 0..256u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.write_slice(1, i * 16, 512, &block(i), false).await }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..256u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            s.read_into(1, i * 16, 512, &mut buf).await.map(|()| buf == block(i))
        }));
    }
    for t in tasks {
        assert!(within(t).await.unwrap().unwrap(), "a block read back wrong");
    }
    let st = s.stats();
    assert!(st.commands.load(std::sync::atomic::Ordering::Relaxed) >= 512);
    within(s.logout()).await.unwrap();
}

/// With many commands outstanding the engine lets the socket wake it only once about half
/// of the data the target owes has arrived. Errors carry no data, so a burst of them never
/// reaches that mark: the fallback timer must still complete them, long before any command
/// timeout (there is none here: without the fallback they would hang until the test's bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_commands_complete_while_receive_is_coalesced() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:co").unwrap();
    t.add_lun_file(1, 1, 8 << 20).unwrap();
    t.bind_all(1).unwrap();
    let mut cfg = config(&t, "iqn.2024-01.test:co", Auth::None, Offer::default());
    cfg.timeouts.command = None;
    let s = within(Session::login(cfg)).await.unwrap();
    within(s.test_unit_ready(1)).await.unwrap();
    let blocks = (8u64 << 20) / 512;
    let fallbacks = || s.stats().coalesce_fallbacks.load(std::sync::atomic::Ordering::Relaxed);
    // (IO size, which of the 96 reads go past the end): all 64 KiB reads failing, every other
    // one failing, then 1 MiB reads, half failing, so that errors meet the engine while it
    // reads headers on their own for large Data-In.
    type Round = (usize, fn(u64) -> bool);
    let rounds: [Round; 3] = [(64 << 10, |_| true), (64 << 10, |i| i % 2 == 0), (1 << 20, |i| i % 2 == 1)];
    for (round, (size, is_bad)) in rounds.into_iter().enumerate() {
        let start = std::time::Instant::now();
        let before = fallbacks();
        let mut tasks = Vec::new();
        for i in 0..96u64 {
            let bad = is_bad(i);
            let lba = if bad { blocks + 1024 + i } else { (i % 6) * 2048 };
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; size];
                (bad, s.read_into(1, lba, 512, &mut buf).await)
            }));
        }
        for task in tasks {
            let (bad, r) = tokio::time::timeout(Duration::from_secs(20), task).await.expect("a command hung").unwrap();
            assert_eq!(r.is_err(), bad, "round {round}: {r:?}");
        }
        // Not a speed check: a stall per failing command would take far longer, and would
        // show as one fallback each.
        assert!(start.elapsed() < Duration::from_secs(10), "round {round} took {:?}", start.elapsed());
        let used = fallbacks() - before;
        assert!(used < 24, "round {round}: {used} coalescing fallbacks for 96 commands");
    }
    within(s.logout()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_execute_reports_check_condition() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:cc").unwrap();
    t.add_lun_file(1, 1, 1 << 20).unwrap();
    t.bind_all(1).unwrap();
    let s = within(Session::login(config(&t, "iqn.2024-01.test:cc", Auth::None, Offer::default()))).await.unwrap();
    // The first command of a new nexus meets POWER ON/RESET; clear it first.
    within(s.test_unit_ready(1)).await.unwrap();
    // READ(10) far beyond the end of a 1 MiB LU: CHECK CONDITION with ILLEGAL REQUEST sense.
    let cdb = [0x28, 0, 0x00, 0x10, 0, 0, 0, 0, 1, 0];
    let (buf, c) = within(s.execute(lunlink_proto::lun::encode(1), &cdb, DataBuf::In(vec![0u8; 512]))).await;
    let c = c.unwrap();
    let mut buf = buf.unwrap();
    assert_eq!(c.status, 2);
    assert!(c.sense().len() >= 14);
    assert_eq!(c.sense()[2] & 0x0f, 5, "ILLEGAL REQUEST");
    // The typed helper turns it into an error naming the problem.
    let err = within(s.read_into(1, 0x10_0000, 512, &mut buf)).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("illegal request") || err.to_string().contains("out of range"), "{err}");
    within(s.logout()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_wait_for_a_small_cmdsn_window() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:window").unwrap();
    t.add_lun_file(1, 1, 8 << 20).unwrap();
    t.bind_all(1).unwrap();
    // tgtd's MaxQueueCmd is the CmdSN window it grants (MaxCmdSN - ExpCmdSN + 1).
    t.set_target_param(1, "MaxQueueCmd", "4").unwrap();
    let s = within(Session::login(config(&t, "iqn.2024-01.test:window", Auth::None, Offer::default()))).await.unwrap();
    s.test_unit_ready(1).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let data = vec![(i % 251) as u8; 4096];
            s.write_slice(1, i * 8, 512, &data, false).await?;
            let mut back = vec![0u8; 4096];
            s.read_into(1, i * 8, 512, &mut back).await?;
            Ok::<bool, lunlink_engine::ScsiOpError>(back == data)
        }));
    }
    for t in tasks {
        assert!(within(t).await.unwrap().unwrap(), "data read back wrong");
    }
    within(s.logout()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_lun_is_announced_as_a_unit_attention_event() {
    let t = Tgtd::start();
    t.add_target(1, "iqn.2024-01.test:ua").unwrap();
    t.add_lun_file(1, 1, 1 << 20).unwrap();
    t.bind_all(1).unwrap();
    let s = within(Session::login(config(&t, "iqn.2024-01.test:ua", Auth::None, Offer::default()))).await.unwrap();
    within(s.test_unit_ready(1)).await.unwrap();
    let mut events = s.subscribe();
    // tgtd reports REPORTED LUNS DATA HAS CHANGED (3f/0e) to the other LUNs' next command.
    t.add_lun_file(1, 2, 1 << 20).unwrap();
    within(s.test_unit_ready(1)).await.unwrap();
    let got = within(async {
        loop {
            if let lunlink_engine::SessionEvent::UnitAttention { sense, .. } = events.recv().await.unwrap() {
                let sense = lunlink_scsi::Sense::parse(&sense).unwrap();
                if sense.is_reported_luns_changed() {
                    break true;
                }
            }
        }
    })
    .await;
    assert!(got);
    let mut luns = within(s.report_luns()).await.unwrap();
    luns.sort();
    assert_eq!(luns, [0, 1, 2]);
    within(s.logout()).await.unwrap();
}
