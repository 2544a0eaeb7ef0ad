//! Logical units: the LU a new LUN joins (by its identity) or makes, its multipath policy,
//! failing its queued IO, mirroring its state on the bus, and a LUN leaving it.

use super::*;

impl Manager {
    pub fn lu(&self, id: LuId) -> Option<LuView> {
        let st = self.lock();
        let l = st.lus.get(&id)?;
        let first = l.luns.iter().find_map(|n| st.luns.get(n).map(|e| (*n, e)));
        let (info, device, session) = first.map_or_else(Default::default, |(_, e)| (e.info.clone(), e.device.clone(), Some(e.session)));
        let (size, block_size) = info.capacity.map_or((0, 0), |c| (c.bytes(), c.block_size));
        let (target, portal) = session.and_then(|s| st.sessions.get(&s)).map_or_else(Default::default, |s| {
            let i = s.session.info();
            (i.target_name, i.portal)
        });
        Some(LuView {
            key: l.key.clone(),
            info,
            size,
            block_size,
            device,
            paths: l.luns.clone(),
            policy: l.mp.policy().as_str(),
            state: l.mp.state().as_str(),
            queued: l.mp.queued(),
            target,
            portal,
        })
    }

    /// Sets how logical unit `id` spreads its IO over its paths.
    pub fn set_lu_policy(&self, id: LuId, policy: &str) -> Result<(), DaemonError> {
        let p = lunlink_multipath::Policy::from_name(policy).ok_or_else(|| {
            DaemonError::InvalidArgument(format!("{policy:?} is not a policy: use failover, round-robin or queue-depth"))
        })?;
        let mp = self.lock().lus.get(&id).map(|l| l.mp.clone()).ok_or_else(|| DaemonError::NotFound("no such logical unit".into()))?;
        mp.set_policy(p);
        Ok(())
    }

    /// Fails at once the IO of logical unit `id` that waits for a path.
    pub fn fail_queued(&self, id: LuId) -> Result<u32, DaemonError> {
        let mp = self.lock().lus.get(&id).map(|l| l.mp.clone()).ok_or_else(|| DaemonError::NotFound("no such logical unit".into()))?;
        let n = mp.queued();
        mp.fail_queued();
        tracing::warn!(lu = %mp.key, queued = n, "queued IO failed on request");
        Ok(n)
    }

    /// Adds LUN `id` (LUN `n` of `session`) as a path of its logical unit, making the LU
    /// object when it is new. The LU is shared with the block device layer.
    pub(super) fn join_lu(&self, st: &mut State, sid: SessionId, id: LunId, session: &Session, info: &engine::LunInfo) -> (LuId, bool) {
        let si = session.info();
        let key = crate::device::lu_key(info, &si.target_name, &si.portal);
        // The node's own path policy, for an LU it is the first to reach.
        let policy = st
            .sessions
            .get(&sid)
            .and_then(|e| st.nodes.get(&e.node))
            .and_then(|n| n.node.multipath_policy.as_deref())
            .and_then(lunlink_multipath::Policy::from_name);
        let (lu, new) = match st.lus.iter().find(|(_, l)| l.key == key).map(|(i, _)| *i) {
            Some(lu) => (lu, false),
            None => {
                let lu = st.id();
                let mp = self.devices.registry().get(&key);
                if let Some(p) = policy {
                    mp.set_policy(p);
                }
                st.lus.insert(lu, LuEntry { key, mp, luns: Vec::new() });
                (lu, true)
            }
        };
        if let Some(l) = st.lus.get_mut(&lu) {
            l.luns.push(id);
            let path = lunlink_multipath::Path::new(id, session.clone(), info.lun);
            path.set_alua(info.tpgs, info.target_port_group, info.relative_target_port);
            l.mp.add_path(Arc::new(path));
        }
        (lu, new)
    }

    /// Mirrors logical unit `lu`'s state changes (paths failing and coming back, queueing) on
    /// its object and its paths' objects, until it goes away.
    pub(super) fn watch_lu(&self, lu: LuId) {
        let Some(mut rx) = self.lock().lus.get(&lu).map(|l| l.mp.subscribe()) else { return };
        let me = self.me.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(m) = me.upgrade() else { return };
                let luns = match m.lock().lus.get(&lu) {
                    Some(l) => l.luns.clone(),
                    None => return,
                };
                m.emit(Change::LuChanged(lu));
                for l in luns {
                    m.emit(Change::LunChanged(l));
                }
            }
        });
    }

    /// Takes LUN `id` out of session `sid`, its logical unit and its device; with `hold`, its
    /// path is held out first so no IO of the LU goes to it while the device detaches.
    pub(super) async fn remove_lun(&self, sid: SessionId, id: LunId, hold: bool) {
        let (changes, mp) = {
            let mut st = self.lock();
            let mp = st.luns.get(&id).and_then(|e| st.lus.get(&e.lu)).map(|l| l.mp.clone());
            let changes = self.leave_lus(&mut st, &[id]);
            st.luns.remove(&id);
            if let Some(e) = st.sessions.get_mut(&sid) {
                e.luns.retain(|l| *l != id);
            }
            (changes, mp)
        };
        if let (true, Some(mp)) = (hold, &mp) {
            if let Some(p) = mp.paths().into_iter().find(|p| p.id == id) {
                p.hold();
            }
        }
        self.devices.detach(id).await;
        if let Some(mp) = mp {
            mp.remove_path(id);
        }
        self.emit(Change::LunRemoved(id));
        for c in changes {
            self.emit(c);
        }
    }

    /// Takes LUNs out of their logical units (removing LUs left without a path), now; the
    /// paths leave the multipath layer once their devices let go of them (`devices.detach`).
    pub(super) fn leave_lus(&self, st: &mut State, luns: &[LunId]) -> Vec<Change> {
        let mut changes = Vec::new();
        for id in luns {
            let Some(lu) = st.luns.get(id).map(|e| e.lu) else { continue };
            let gone = match st.lus.get_mut(&lu) {
                Some(l) => {
                    l.luns.retain(|x| x != id);
                    l.luns.is_empty()
                }
                None => continue,
            };
            if gone {
                st.lus.remove(&lu);
                changes.push(Change::LuRemoved(lu));
            } else {
                changes.push(Change::LuChanged(lu));
            }
        }
        changes
    }

    /// Removes paths from the multipath layer once their devices are done with them.
    pub(super) fn drop_paths_later(&self, luns: Vec<(LunId, Arc<lunlink_multipath::LogicalUnit>)>) {
        if luns.is_empty() {
            return;
        }
        let devices = self.devices.clone();
        tokio::spawn(async move {
            for (id, mp) in luns {
                devices.detach(id).await;
                mp.remove_path(id);
            }
        });
    }
}
