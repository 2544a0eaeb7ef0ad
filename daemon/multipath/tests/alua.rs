//! ALUA in the multipath layer, against a fake two-port array (`lunlink_tests::AluaArray`)
//! whose port states the test sets, as an array's controllers would. The real target for ALUA
//! is Linux LIO in the VM (`tests/vm/scenarios/lio-alua.sh`); here the LU layer's choices are
//! checked on the host, fast: IO only on the optimized port, moves on a state change (told by
//! UNIT ATTENTION 2A/06), waits while no port is active, waits out a transition, never fails.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{until, Readers};
use lunlink_engine::{Auth, Offer, Session, SessionConfig, Timeouts};
use lunlink_multipath::{LogicalUnit, LuState, Path, PathState, Policy, Timers};
use lunlink_scsi::AccessState;
use lunlink_tests::{AluaArray, FakeTarget, FAKE_TARGET_NAME};
use tokio::time::Instant;

const T: Duration = Duration::from_secs(90);

async fn path(portal: &str, id: u64) -> Arc<Path> {
    let s = Session::login(SessionConfig {
        initiator_name: "iqn.2024-01.org.lunlink:alua".into(),
        initiator_alias: None,
        target_name: FAKE_TARGET_NAME.into(),
        portal: portal.parse().unwrap(),
        auth: Auth::None,
        offer: Offer::default(),
        isid: [0x80, 0x11, 0x22, 0x33, 0x55, u8::try_from(id).unwrap()],
        queue_depth: 32,
        timeouts: Timeouts { login: Duration::from_secs(3), ..Timeouts::default() },
    })
    .await
    .expect("login");
    let info = s.probe_lun(1).await.expect("probe LUN 1");
    assert_eq!(info.tpgs, 1, "the fake array says implicit ALUA");
    assert_eq!(info.target_port_group, Some(u16::try_from(id).unwrap()), "its port group from VPD 0x83");
    let p = Path::new(id, s, 1);
    p.set_alua(info.tpgs, info.target_port_group, info.relative_target_port);
    Arc::new(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_follows_the_access_states() {
    tokio::time::timeout(T, async {
        let array = AluaArray::new(0, 2); // port 1 active/optimized, port 2 standby
        let (t1, t2) = (FakeTarget::start_alua(&array, 1), FakeTarget::start_alua(&array, 2));
        let lu = LogicalUnit::new("naa.alua".into(), Policy::QueueDepth, Timers::default());
        let (p1, p2) = (path(t1.portal(), 1).await, path(t2.portal(), 2).await);
        lu.add_path(p1.clone());
        lu.add_path(p2.clone());
        until(Duration::from_secs(5), "the states read", || {
            p1.access_state() == Some(AccessState::ActiveOptimized) && p2.access_state() == Some(AccessState::Standby)
        })
        .await;
        assert_eq!(p1.target_port_group(), Some(1));
        assert_eq!((lu.path_state(1), lu.path_state(2)), (Some(PathState::Active), Some(PathState::Standby)));
        assert_eq!(lu.state(), LuState::Optimal, "a standby path is a healthy path");

        let readers = Readers::start(&lu, 8);
        until(Duration::from_secs(5), "reads on port 1", || array.served(1) > 200).await;
        assert_eq!(array.served(2), 0, "no IO through the standby port");

        // A controller failover: port 2 optimized, then port 1 standby. Port 1's next command
        // meets UNIT ATTENTION 2A/06, then NOT READY standby: IO moves to port 2.
        let t0 = Instant::now();
        array.set(2, 0);
        array.set(1, 2);
        let s2 = array.served(2);
        until(Duration::from_secs(2), "IO on port 2 after the flip", || array.served(2) > s2 + 100).await;
        println!("FIGURE alua flip: IO on the newly optimized port {} ms after the change", t0.elapsed().as_millis());
        until(Duration::from_secs(2), "the new states shown", || {
            lu.path_state(1) == Some(PathState::Standby) && lu.path_state(2) == Some(PathState::Active)
        })
        .await;
        let s1 = array.served(1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(array.served(1), s1, "no IO through the port now standby");

        // No port active for 1 s: IO waits (the LU shows it queued), then goes to port 1.
        array.set(2, 2);
        until(Duration::from_secs(2), "IO waiting", || lu.queued() > 0).await;
        assert_eq!(lu.state(), LuState::Queueing);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        let s1 = array.served(1);
        array.set(1, 0);
        until(Duration::from_secs(2), "IO on port 1 once it is active", || array.served(1) > s1 + 100).await;
        println!("FIGURE alua no active port: IO on port 1 {} ms after it became optimized", t0.elapsed().as_millis());

        // A 1 s transition on the only active port (NOT READY 04/0A meanwhile): waited out.
        array.set(1, 0xf);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s1 = array.served(1);
        array.set(1, 1);
        until(Duration::from_secs(3), "IO on port 1, non-optimized now", || array.served(1) > s1 + 100).await;
        until(Duration::from_secs(2), "port 1 shown non-optimized", || p1.access_state() == Some(AccessState::ActiveNonOptimized)).await;

        let l = readers.longest_ms();
        assert_eq!(readers.stop().await, 0, "no read failed");
        println!("FIGURE alua longest read: {l} ms (1 s without an active port, a 1 s transition)");
        assert!(l < 3_000, "a read waited {l} ms");

        // Every port standby, no IO: the LU is not "optimal", though each path is healthy.
        array.set(1, 2);
        until(Duration::from_secs(5), "port 1 read as standby", || p1.access_state() == Some(AccessState::Standby)).await;
        assert_eq!(lu.state(), LuState::Degraded, "no path may carry IO");
    })
    .await
    .expect("test timed out");
}

/// A port in a long transition (longer than the path timeout) while another port may carry IO:
/// its commands move at once, and the port is not failed (it is fine, only busy changing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_transition_hands_its_io_over_without_failing() {
    tokio::time::timeout(T, async {
        let array = AluaArray::new(0, 1); // port 1 optimized, port 2 non-optimized
        let (t1, t2) = (FakeTarget::start_alua(&array, 1), FakeTarget::start_alua(&array, 2));
        let lu = LogicalUnit::new("naa.alua2".into(), Policy::QueueDepth, Timers::default());
        let (p1, p2) = (path(t1.portal(), 1).await, path(t2.portal(), 2).await);
        lu.add_path(p1.clone());
        lu.add_path(p2.clone());
        until(Duration::from_secs(5), "the states read", || p2.access_state() == Some(AccessState::ActiveNonOptimized)).await;
        let readers = Readers::start(&lu, 8);
        until(Duration::from_secs(5), "reads on port 1", || array.served(1) > 200).await;
        assert_eq!(array.served(2), 0, "the non-optimized port waits while the optimized one works");

        let t0 = Instant::now();
        array.set(1, 0xf);
        let s2 = array.served(2);
        until(Duration::from_secs(2), "IO on port 2", || array.served(2) > s2 + 100).await;
        println!("FIGURE alua transition: IO on the non-optimized port {} ms after the other began a transition", t0.elapsed().as_millis());
        tokio::time::sleep(Duration::from_secs(4)).await; // past the 3 s path timeout
        assert_eq!(lu.path_state(1), Some(PathState::Standby), "in transition, not failed");
        let s1 = array.served(1);
        array.set(1, 0);
        until(Duration::from_secs(3), "IO back on port 1", || array.served(1) > s1 + 100).await;
        let l = readers.longest_ms();
        assert_eq!(readers.stop().await, 0, "no read failed");
        println!("FIGURE alua transition: longest read {l} ms");
        assert!(l < 1_000, "a read waited {l} ms although another port could serve it");
    })
    .await
    .expect("test timed out");
}
