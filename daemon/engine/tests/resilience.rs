//! Sessions that survive (issue 5): a real tgtd killed, restarted, stopped and told to drop
//! connections while the engine has commands in flight.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lunlink_engine::{Auth, LinkState, Offer, Portal, Session, SessionConfig, Timeouts};
use lunlink_tests::{TargetSpec, Tgtd};
use tokio::time::Instant;

const INITIATOR: &str = "iqn.2024-01.org.lunlink:resilience";
const IQN: &str = "iqn.2024-01.test:res";

fn spec() -> TargetSpec {
    TargetSpec::new(1, IQN).file_lun(1, 32 << 20)
}

fn config(t: &Tgtd, timeouts: Timeouts) -> SessionConfig {
    SessionConfig {
        initiator_name: INITIATOR.into(),
        initiator_alias: None,
        target_name: IQN.into(),
        portal: t.portal().parse::<Portal>().unwrap(),
        auth: Auth::None,
        offer: Offer::default(),
        isid: [0x80, 0x11, 0x22, 0x33, 0x44, rand::random()],
        queue_depth: 128,
        timeouts,
    }
}

fn fast() -> Timeouts {
    Timeouts {
        noop_interval: Some(Duration::from_secs(1)),
        noop_timeout: Duration::from_secs(1),
        replacement: Some(Duration::from_secs(60)),
        ..Timeouts::default()
    }
}

/// Polls the session's link state until `want`, with a deadline.
async fn wait_link(s: &Session, want: LinkState, within: Duration) -> Duration {
    let start = Instant::now();
    while s.link_state() != want {
        assert!(start.elapsed() < within, "link state did not become {want:?} within {within:?} (is {:?})", s.link_state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn block(i: u64, gen: u64) -> Vec<u8> {
    (0..65536u64).map(|j| ((i * 131 + j * 7 + gen * 17) % 253) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_killed_and_restarted_with_128_commands_in_flight() {
    let mut t = Tgtd::start_with(&[spec()]);
    let s = Session::login(config(&t, fast())).await.unwrap();
    s.test_unit_ready(1).await.unwrap();
    // 128 workers each rewrite their own 64 KiB block several times and read it back.
    let mut tasks = Vec::new();
    for i in 0..128u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for gen in 0..6u64 {
                let data = block(i, gen);
                s.write_slice(1, i * 128, 512, &data, false).await.map_err(|e| format!("write {i}/{gen}: {e}"))?;
                let mut back = vec![0u8; data.len()];
                s.read_into(1, i * 128, 512, &mut back).await.map_err(|e| format!("read {i}/{gen}: {e}"))?;
                if back != data {
                    return Err(format!("block {i} generation {gen} read back wrong"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    // Kill the target once IO is flowing, restart it after the session noticed.
    let started = Instant::now();
    while s.stats().commands.load(Ordering::Relaxed) < 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "IO did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| t.kill());
    wait_link(&s, LinkState::Reconnecting, Duration::from_secs(10)).await;
    tokio::task::block_in_place(|| t.restart_with(&[spec()]));
    wait_link(&s, LinkState::LoggedIn, Duration::from_secs(60)).await;
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task).await.expect("a worker hung").unwrap().unwrap();
    }
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_by_the_target_is_reestablished() {
    let t = Tgtd::start_with(&[spec()]);
    let s = Session::login(config(&t, fast())).await.unwrap();
    s.test_unit_ready(1).await.unwrap();
    let tsih = s.info().tsih;
    let conns = t.show_conns(1).unwrap();
    assert_eq!(conns.len(), 1, "one connection: {conns:?}");
    let (sid, cid) = conns[0];
    t.delete_conn(1, sid, cid).unwrap();
    wait_link(&s, LinkState::Reconnecting, Duration::from_secs(10)).await;
    wait_link(&s, LinkState::LoggedIn, Duration::from_secs(30)).await;
    let mut buf = vec![0u8; 4096];
    s.read_into(1, 0, 512, &mut buf).await.unwrap();
    assert_ne!(s.info().tsih, 0);
    let _ = tsih;
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_target_is_detected_by_nop_timeout() {
    let t = Tgtd::start_with(&[spec()]);
    let s = Session::login(config(&t, fast())).await.unwrap();
    s.test_unit_ready(1).await.unwrap();
    t.sigstop();
    // Idle session: a ping goes out after noop_interval (1 s) and must be answered within
    // noop_timeout (1 s): the loss is seen within about 2 s.
    let took = wait_link(&s, LinkState::Reconnecting, Duration::from_secs(10)).await;
    assert!(took < Duration::from_millis(3500), "NOP timeout took {took:?}");
    t.sigcont();
    wait_link(&s, LinkState::LoggedIn, Duration::from_secs(30)).await;
    s.test_unit_ready(1).await.unwrap();
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_timeout_fails_io_and_io_works_again_after_return() {
    let mut t = Tgtd::start_with(&[spec()]);
    let timeouts = Timeouts { replacement: Some(Duration::from_secs(2)), ..fast() };
    let s = Session::login(config(&t, timeouts)).await.unwrap();
    s.test_unit_ready(1).await.unwrap();
    tokio::task::block_in_place(|| t.kill());
    // A read issued now waits, then fails once the replacement timeout expires: never hangs.
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let r = tokio::time::timeout(Duration::from_secs(20), s.read_into(1, 0, 512, &mut buf)).await.expect("read hung");
    let took = start.elapsed();
    assert!(r.is_err(), "read must fail while the target is gone");
    assert!(took < Duration::from_secs(8), "failed after {took:?}: replacement timeout is 2 s");
    assert_eq!(s.link_state(), LinkState::Down);
    // New IO fails at once while down.
    let quick = Instant::now();
    assert!(s.read_into(1, 0, 512, &mut buf).await.is_err());
    assert!(quick.elapsed() < Duration::from_secs(1));
    // The target returns: the session comes back and IO works again.
    tokio::task::block_in_place(|| t.restart_with(&[spec()]));
    wait_link(&s, LinkState::LoggedIn, Duration::from_secs(60)).await;
    s.read_into(1, 0, 512, &mut buf).await.unwrap();
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_while_reconnecting_always_works() {
    let mut t = Tgtd::start_with(&[spec()]);
    let s = Session::login(config(&t, fast())).await.unwrap();
    tokio::task::block_in_place(|| t.kill());
    wait_link(&s, LinkState::Reconnecting, Duration::from_secs(10)).await;
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), s.logout()).await.expect("logout hung").unwrap();
    assert!(start.elapsed() < Duration::from_secs(16), "logout waited out a login attempt at most");
    assert!(!s.is_open());
    let mut buf = vec![0u8; 512];
    assert!(s.read_into(1, 0, 512, &mut buf).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_command_is_escalated_not_hung() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("lunlink_engine=info").try_init();
    let t = Tgtd::start_with(&[spec()]);
    let timeouts = Timeouts { command: Some(Duration::from_secs(2)), noop_interval: None, ..fast() };
    let s = Session::login(config(&t, timeouts)).await.unwrap();
    s.test_unit_ready(1).await.unwrap();
    // An offline tgtd target never answers commands sent meanwhile (targets.md).
    t.set_target_state(1, "offline").unwrap();
    let s2 = s.clone();
    let io = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        s2.read_into(1, 0, 512, &mut buf).await
    });
    // The escalation (ABORT TASK, LU RESET, reconnect) must act on it.
    let start = Instant::now();
    while s.stats().errors.load(Ordering::Relaxed) == 0 && s.link_state() == LinkState::LoggedIn && !io.is_finished() {
        assert!(start.elapsed() < Duration::from_secs(60), "the unanswered command was never escalated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.set_target_state(1, "ready").unwrap();
    let r = tokio::time::timeout(Duration::from_secs(90), io).await.expect("the command hung").unwrap();
    eprintln!("outcome after escalation: {r:?}, errors counted: {}", s.stats().errors.load(Ordering::Relaxed));
    // Either it failed with a timeout, or it was sent again after a reset and succeeded.
    if let Err(e) = &r {
        assert!(e.to_string().contains("timed out") || e.to_string().contains("connection"), "{e}");
    }
    wait_link(&s, LinkState::LoggedIn, Duration::from_secs(60)).await;
    s.test_unit_ready(1).await.unwrap();
    s.logout().await.unwrap();
}
