//! Native multipath through the daemon, on the host (no block device needed): one LU reached
//! through two portals is one LogicalUnit object with two paths; `lunlinkctl lus` shows it,
//! its policy can be changed, and a silenced path shows as failed while the LU is degraded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lunlink_tests::{poll_until, Bus, Proxy, TargetSpec, Tgtd};

const IQN: &str = "iqn.2024-01.test:mpath";

#[test]
fn one_logical_unit_with_two_paths() {
    let tgt = Tgtd::start_with(&[TargetSpec::new(1, IQN).file_lun(1, 16 << 20)]);
    let proxy = Proxy::start(&tgt.portal());
    let bus = Bus::start();
    let dirs = Dirs::new();
    let _d = Daemon::start(&bus, &dirs);
    // The node that logs in first sets its LU's policy.
    ok(&ctl(&bus, &["node", "create", IQN, &tgt.portal(), "--multipath-policy", "round-robin"]));
    ok(&ctl(&bus, &["node", "create", IQN, proxy.portal()]));
    let o = ctl(&bus, &["node", "update", IQN, "--portal", proxy.portal(), "--multipath-policy", "fastest"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    ok(&ctl(&bus, &["login", IQN, "--portal", &tgt.portal()]));
    ok(&ctl(&bus, &["login", IQN, "--portal", proxy.portal()]));
    let lus = || json(&ctl(&bus, &["--json", "lus"]));
    let ok_two = poll_until(Instant::now() + Duration::from_secs(20), || lus()[0]["paths"].as_array().is_some_and(|p| p.len() == 2));
    assert!(ok_two, "one LU with two paths expected: {}", lus());
    let l = lus();
    assert_eq!(l.as_array().unwrap().len(), 1, "two sessions to one LU give one logical unit: {l}");
    let lu = &l[0];
    assert!(lu["wwid"].as_str().unwrap().starts_with("naa."), "{lu}");
    assert_eq!(lu["policy"], "round-robin", "the first node's policy: {lu}");
    assert_eq!(lu["state"], "optimal");
    let portals: Vec<&str> = lu["paths"].as_array().unwrap().iter().map(|p| p["portal"].as_str().unwrap()).collect();
    assert!(portals.contains(&tgt.portal().as_str()) && portals.contains(&proxy.portal()), "{portals:?}");
    for p in lu["paths"].as_array().unwrap() {
        assert_eq!(p["target"], IQN);
        assert_eq!(p["state"], "active", "{lu}");
    }
    let table = ok(&ctl(&bus, &["lus"]));
    assert!(table.contains("optimal") && table.contains("round-robin"), "{table}");

    // Policy by WWID: failover makes the second path stand by.
    let wwid = lu["wwid"].as_str().unwrap().to_owned();
    ok(&ctl(&bus, &["lu", "policy", &wwid, "failover"]));
    let l = lus();
    assert_eq!(l[0]["policy"], "failover");
    let states: Vec<&str> = l[0]["paths"].as_array().unwrap().iter().map(|p| p["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"active") && states.contains(&"standby"), "{states:?}");
    let o = ctl(&bus, &["lu", "policy", &wwid, "fastest"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ctl(&bus, &["lu", "fail-queued", &wwid]);
    assert!(ok(&o).contains("0 queued IO failed"));

    // The proxied path goes silent; its session notices (NOP-Out unanswered) and the path
    // shows as failed, the LU as degraded.
    proxy.silence();
    let degraded = poll_until(Instant::now() + Duration::from_secs(30), || lus()[0]["state"] == "degraded");
    let l = lus();
    assert!(degraded, "the LU did not become degraded: {l}");
    let failed = l[0]["paths"].as_array().unwrap().iter().find(|p| p["portal"] == proxy.portal()).unwrap();
    assert_eq!(failed["state"], "failed", "{l}");
    proxy.resume();
    let back = poll_until(Instant::now() + Duration::from_secs(40), || lus()[0]["state"] == "optimal");
    assert!(back, "the LU did not become optimal again: {}", lus());
}
