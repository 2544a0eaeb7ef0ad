//! The multipath layer against a real tgtd: two paths to one LU (tgtd's own portal and a
//! loopback proxy in front of it, which the test can silence like a pulled cable or reset),
//! with continuous IO. No block device is needed.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{until, Readers};

use lunlink_engine::{Auth, Offer, Session, SessionConfig, Timeouts};
use lunlink_multipath::{execute, LogicalUnit, LuError, LuState, Path, PathState, Policy, Timers};
use lunlink_tests::{Proxy, TargetSpec, Tgtd};
use tokio::time::Instant;

const IQN: &str = "iqn.2024-01.test:multipath";
const T: Duration = Duration::from_secs(90);

async fn login(portal: &str, isid_last: u8) -> Session {
    Session::login(SessionConfig {
        initiator_name: "iqn.2024-01.org.lunlink:mp".into(),
        initiator_alias: None,
        target_name: IQN.into(),
        portal: portal.parse().unwrap(),
        auth: Auth::None,
        offer: Offer::default(),
        isid: [0x80, 0x11, 0x22, 0x33, 0x44, isid_last],
        queue_depth: 64,
        timeouts: Timeouts { login: Duration::from_secs(3), ..Timeouts::default() },
    })
    .await
    .expect("login")
}

struct Rig {
    _tgt: Tgtd,
    proxy: Proxy,
    lu: Arc<LogicalUnit>,
    direct: Arc<Path>,
    proxied: Arc<Path>,
}

/// tgtd with one 32 MiB LU; path 1 straight to it, path 2 through the proxy.
async fn rig(policy: Policy, timers: Timers) -> Rig {
    let tgt = Tgtd::start_with(&[TargetSpec::new(1, IQN).file_lun(1, 32 << 20)]);
    let proxy = Proxy::start(&tgt.portal());
    let lu = LogicalUnit::new("naa.test".into(), policy, timers);
    let s1 = login(&tgt.portal(), 1).await;
    let s2 = login(proxy.portal(), 2).await;
    // Clear each nexus's POWER ON unit attention.
    s1.test_unit_ready(1).await.unwrap();
    s2.test_unit_ready(1).await.unwrap();
    let direct = Arc::new(Path::new(1, s1, 1));
    let proxied = Arc::new(Path::new(2, s2, 1));
    lu.add_path(direct.clone());
    lu.add_path(proxied.clone());
    Rig { _tgt: tgt, proxy, lu, direct, proxied }
}

async fn read(lu: &LogicalUnit, lba: u64) -> Result<Vec<u8>, LuError> {
    execute(lu, |p| async move { p.session.read_vec(p.lun, lba, 512, 4096).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_path_fails_over_within_the_path_timeout_and_fails_back() {
    tokio::time::timeout(T, async {
        let r = rig(Policy::QueueDepth, Timers::default()).await;
        let readers = Readers::start(&r.lu, 16);
        // Both paths carry IO under queue-depth.
        let c0 = (r.direct.session.stats().commands.load(Ordering::Relaxed), r.proxied.session.stats().commands.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c1 = (r.direct.session.stats().commands.load(Ordering::Relaxed), r.proxied.session.stats().commands.load(Ordering::Relaxed));
        assert!(c1.0 > c0.0 + 50 && c1.1 > c0.1 + 50, "both paths carry IO: {c0:?} -> {c1:?}");
        assert_eq!(r.lu.state(), LuState::Optimal);

        // The proxied path goes silent (no RST): IO moves within the path timeout.
        readers.reset_longest();
        r.proxy.silence();
        until(Duration::from_secs(6), "the silent path failed", || r.lu.path_state(2) == Some(PathState::Failed)).await;
        assert_eq!(r.lu.state(), LuState::Degraded);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stall = readers.longest_ms();
        println!("FIGURE multipath silent path: longest read {stall} ms, moves included (path timeout {:?})", r.lu.timers().path_timeout);
        assert!(stall <= 5_000, "IO stalled {stall} ms on a silent path");
        assert_eq!(readers.errors(), 0, "no IO failed");

        // Back: the path is probed and carries IO again within a check interval or two.
        let t0 = Instant::now();
        r.proxy.resume();
        until(Duration::from_secs(30), "the path came back", || r.lu.path_state(2) == Some(PathState::Active)).await;
        println!("FIGURE multipath failback: path active again {} ms after it answered", t0.elapsed().as_millis());
        let before = r.proxied.session.stats().commands.load(Ordering::Relaxed);
        until(Duration::from_secs(10), "IO on the path again", || r.proxied.session.stats().commands.load(Ordering::Relaxed) > before + 50).await;
        assert_eq!(readers.stop().await, 0, "no IO failed");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_path_moves_io_at_once() {
    tokio::time::timeout(T, async {
        let r = rig(Policy::RoundRobin, Timers::default()).await;
        let readers = Readers::start(&r.lu, 8);
        tokio::time::sleep(Duration::from_millis(300)).await;
        readers.reset_longest();
        r.proxy.reset();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stall = readers.longest_ms();
        println!("FIGURE multipath reset path: longest read {stall} ms, moves included");
        assert!(stall <= 1_000, "IO stalled {stall} ms when a path was reset");
        assert_eq!(readers.stop().await, 0, "no IO failed");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_spread_or_keep_io() {
    tokio::time::timeout(T, async {
        let r = rig(Policy::Failover, Timers::default()).await;
        let counts = || (r.direct.session.stats().commands.load(Ordering::Relaxed), r.proxied.session.stats().commands.load(Ordering::Relaxed));
        let c0 = counts();
        for i in 0..200 {
            read(&r.lu, i * 8).await.unwrap();
        }
        let c1 = counts();
        assert_eq!(c1.1, c0.1, "failover: the standby path carries nothing");
        assert!(c1.0 >= c0.0 + 200, "failover: the first path carries all");
        assert_eq!(r.lu.path_state(2), Some(PathState::Standby));
        r.lu.set_policy(Policy::RoundRobin);
        for i in 0..200 {
            read(&r.lu, i * 8).await.unwrap();
        }
        let c2 = counts();
        let (a, b) = (c2.0 - c1.0, c2.1 - c1.1);
        assert!(a.abs_diff(b) <= 2, "round-robin alternates: {a} and {b}");
        assert_eq!(r.lu.path_state(2), Some(PathState::Active));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_errors_are_not_retried_on_another_path() {
    tokio::time::timeout(T, async {
        let r = rig(Policy::RoundRobin, Timers::default()).await;
        let c0 = r.direct.session.stats().commands.load(Ordering::Relaxed) + r.proxied.session.stats().commands.load(Ordering::Relaxed);
        // Beyond the end of the LU: ILLEGAL REQUEST, LBA out of range (21/00), a target error.
        let e = read(&r.lu, 1 << 30).await.unwrap_err();
        let c1 = r.direct.session.stats().commands.load(Ordering::Relaxed) + r.proxied.session.stats().commands.load(Ordering::Relaxed);
        assert!(matches!(&e, LuError::Op(_)) && e.errno() == libc::EREMOTEIO, "{e}");
        assert_eq!(c1 - c0, 1, "one command, no other path tried");
        assert_eq!(r.lu.state(), LuState::Optimal, "a target error fails no path");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_path_io_queues_then_fails_and_works_again() {
    tokio::time::timeout(T, async {
        let timers = Timers { no_path_timeout: Some(Duration::from_secs(3)), ..Timers::default() };
        let tgt = Tgtd::start_with(&[TargetSpec::new(1, IQN).file_lun(1, 32 << 20)]);
        let (p1, p2) = (Proxy::start(&tgt.portal()), Proxy::start(&tgt.portal()));
        let lu = LogicalUnit::new("naa.test2".into(), Policy::QueueDepth, timers);
        for (id, p) in [(1u8, &p1), (2, &p2)] {
            let s = login(p.portal(), 10 + id).await;
            s.test_unit_ready(1).await.unwrap();
            lu.add_path(Arc::new(Path::new(u64::from(id), s, 1)));
        }
        read(&lu, 0).await.unwrap();
        // Both paths silent: a read waits (queueing), then fails after the no-path timeout.
        p1.silence();
        p2.silence();
        let t0 = Instant::now();
        let waiting = {
            let lu = lu.clone();
            tokio::spawn(async move {
                let r = read(&lu, 8).await;
                if std::env::var_os("MP_DEBUG").is_some() {
                    eprintln!("read 8 ended: {:?}", r.as_ref().map(|v| v.len()));
                }
                r
            })
        };
        until(Duration::from_secs(15), "the LU queueing", || {
            if std::env::var_os("MP_DEBUG").is_some() {
                eprintln!("{:?} queued {} paths {:?} {:?}", lu.state(), lu.queued(), lu.path_state(1), lu.path_state(2));
            }
            lu.state() == LuState::Queueing
        })
        .await;
        let r = waiting.await.unwrap();
        let took = t0.elapsed();
        assert!(matches!(r, Err(LuError::NoPath(_))), "{r:?}");
        println!("FIGURE multipath no path: IO failed after {} ms (path timeout 3 s + no-path timeout 3 s)", took.as_millis());
        assert!(took <= Duration::from_secs(12), "took {took:?}");
        // fail_queued ends waiting IO at once.
        let waiting = {
            let lu = lu.clone();
            tokio::spawn(async move { read(&lu, 16).await })
        };
        until(Duration::from_secs(5), "the LU queueing", || lu.queued() > 0).await;
        let t1 = Instant::now();
        lu.fail_queued();
        assert!(matches!(waiting.await.unwrap(), Err(LuError::NoPath(_))));
        assert!(t1.elapsed() < Duration::from_secs(1));
        // A path comes back: IO works again.
        p1.resume();
        p2.resume();
        until(Duration::from_secs(30), "a path back", || lu.state() != LuState::Failed && lu.state() != LuState::Queueing).await;
        read(&lu, 24).await.unwrap();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_path_keeps_the_sessions_rules() {
    tokio::time::timeout(T, async {
        let tgt = Tgtd::start_with(&[TargetSpec::new(1, IQN).file_lun(1, 32 << 20)]);
        let proxy = Proxy::start(&tgt.portal());
        let lu = LogicalUnit::new("naa.single".into(), Policy::QueueDepth, Timers { no_path_timeout: Some(Duration::from_secs(60)), ..Timers::default() });
        let s = Session::login(SessionConfig {
            initiator_name: "iqn.2024-01.org.lunlink:mp".into(),
            initiator_alias: None,
            target_name: IQN.into(),
            portal: proxy.portal().parse().unwrap(),
            auth: Auth::None,
            offer: Offer::default(),
            isid: [0x80, 0x11, 0x22, 0x33, 0x44, 0x55],
            queue_depth: 8,
            timeouts: Timeouts {
                login: Duration::from_secs(2),
                noop_interval: Some(Duration::from_secs(1)),
                noop_timeout: Duration::from_secs(1),
                replacement: Some(Duration::from_secs(3)),
                ..Timeouts::default()
            },
        })
        .await
        .unwrap();
        s.test_unit_ready(1).await.unwrap();
        lu.add_path(Arc::new(Path::new(1, s, 1)));
        // The only path goes down: IO fails when the session's replacement timeout (3 s)
        // expires, not after the multipath no-path timeout (60 s).
        proxy.silence();
        let t0 = Instant::now();
        let r = read(&lu, 0).await;
        assert!(matches!(r, Err(LuError::Op(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
        // IO issued while the session is down fails at once too.
        let t1 = Instant::now();
        assert!(read(&lu, 8).await.is_err());
        assert!(t1.elapsed() < Duration::from_secs(2), "took {:?}", t1.elapsed());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_flight_on_a_path_that_leaves_move_to_the_other() {
    tokio::time::timeout(T, async {
        let r = rig(Policy::RoundRobin, Timers::default()).await;
        let readers = Readers::start(&r.lu, 16);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // As a Logout does: the path leaves the LU, then its session logs out under the
        // commands still in flight on it.
        r.proxy.silence();
        until(Duration::from_secs(2), "commands in flight on the path", || r.proxied.in_flight() > 0).await;
        r.lu.remove_path(2);
        let s = r.proxied.session.clone();
        let logout = tokio::spawn(async move { s.logout().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The connection goes: the session is over and its commands fail (SessionClosed) at
        // once, before the layer's watch would notice anything.
        r.proxy.reset();
        let _ = logout.await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(readers.stop().await, 0, "no read failed when its path left");
    })
    .await
    .expect("test timed out");
}
