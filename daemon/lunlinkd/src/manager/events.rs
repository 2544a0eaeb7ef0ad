//! What happens to a session after login: its connection state, the target's unit attentions
//! (capacity and LUN inventory changes, so resize and rescan), holding its paths while it
//! reconnects and checking after each relogin that its LUN numbers still name the same LUs.

use super::*;

impl Manager {
    /// Watches a session's events: failures change its state, LUN inventory changes rescan.
    pub(super) fn spawn_monitor(self: &Arc<Self>, sid: SessionId, session: &Session) {
        let mut events = session.subscribe();
        let me = Arc::downgrade(self);
        // The connection may have changed state between the login and the subscription
        // (a target that drops the connection at once): start from where it stands now.
        let now = session.link_state();
        tokio::spawn(async move {
            if now != engine::LinkState::LoggedIn {
                let Some(m) = me.upgrade() else { return };
                m.link_changed(sid, now);
            }
            loop {
                let ev = match events.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                let Some(m) = me.upgrade() else { return };
                match ev {
                    SessionEvent::Closed(exit) => {
                        // The session ended without a Logout call of ours (e.g. every handle
                        // dropped): show it as failed until someone logs it out.
                        let changed = {
                            let mut st = m.lock();
                            match st.sessions.get_mut(&sid) {
                                Some(e) if e.state != SessionState::LoggingOut => {
                                    e.state = SessionState::Failed;
                                    true
                                }
                                _ => false,
                            }
                        };
                        if changed {
                            tracing::warn!(session = sid, "session ended: {exit:?}");
                            m.emit(Change::SessionChanged(sid));
                        }
                        return;
                    }
                    SessionEvent::State(link) => {
                        m.link_changed(sid, link);
                        if link == engine::LinkState::LoggedIn {
                            // Logged in again: the same LUN numbers may now name other LUs.
                            let m2 = m.clone();
                            tokio::spawn(async move { m2.verify_identity(sid).await });
                        } else {
                            m.hold_paths(sid, true);
                        }
                    }
                    SessionEvent::ScsiAsync { lun, sense } | SessionEvent::UnitAttention { lun, sense } => {
                        let parsed = lunlink_scsi::Sense::parse(&sense).ok();
                        if let (Some(true), Some(n)) =
                            (parsed.as_ref().map(|s| s.is_capacity_changed()), lunlink_proto::lun::decode(lun))
                        {
                            let m2 = m.clone();
                            tokio::spawn(async move { m2.capacity_changed(sid, n).await });
                        }
                        let rescan = parsed.is_some_and(|s| s.is_reported_luns_changed());
                        if rescan {
                            let m2 = m.clone();
                            tokio::spawn(async move {
                                if let Err(e) = m2.rescan(sid).await {
                                    tracing::warn!(
                                        session = sid,
                                        "rescan after LUN change failed: {e}"
                                    );
                                }
                            });
                        }
                    }
                    SessionEvent::TargetRequestedLogout => {
                        tracing::info!(session = sid, "target requested logout")
                    }
                }
            }
        });
    }

    /// Holds (or releases) the IO of every path of session `sid` in the multipath layer.
    pub(super) fn hold_paths(&self, sid: SessionId, hold: bool) {
        let paths: Vec<(Arc<lunlink_multipath::LogicalUnit>, Arc<lunlink_multipath::Path>)> = {
            let st = self.lock();
            let Some(e) = st.sessions.get(&sid) else { return };
            e.luns
                .iter()
                .filter_map(|id| {
                    let mp = &st.lus.get(&st.luns.get(id)?.lu)?.mp;
                    Some((mp.clone(), mp.paths().into_iter().find(|p| p.id == *id)?))
                })
                .collect()
        };
        for (mp, p) in paths {
            if hold {
                p.hold();
            } else {
                p.release();
                // A new nexus: its group's ALUA state may differ from before the relogin.
                if p.has_alua() {
                    mp.alua_news();
                }
            }
        }
    }

    /// After a relogin: reads each LUN's identity (VPD 0x83) again. A LUN number that now
    /// answers for another LU (reused on the target) leaves its old LU, whose device never
    /// sees it again, and comes back as a new LUN; the others carry IO again.
    /// Takes LUN `id`'s target port group and relative port from VPD 0x83 designators `ids`
    /// read after a relogin: its path is then matched with its (new) group's ALUA state.
    fn alua_port_read(&self, id: LunId, ids: &[lunlink_scsi::Designator]) {
        let (group, port) = lunlink_scsi::alua::target_port(ids);
        let moved = {
            let mut st = self.lock();
            let Some(l) = st.luns.get_mut(&id) else { return };
            let moved = (l.info.target_port_group, l.info.relative_target_port) != (group, port);
            (l.info.target_port_group, l.info.relative_target_port) = (group, port);
            let tpgs = l.info.tpgs;
            let lu = l.lu;
            if let Some(p) = st.lus.get(&lu).and_then(|e| e.mp.paths().into_iter().find(|p| p.id == id)) {
                p.set_alua(tpgs, group, port);
            }
            moved
        };
        if moved {
            tracing::info!(lun = id, ?group, ?port, "the path now goes through another target port");
            self.emit(Change::LunChanged(id));
        }
    }

    pub(super) async fn verify_identity(self: &Arc<Self>, sid: SessionId) {
        let (session, luns, limit) = {
            let st = self.lock();
            let Some(e) = st.sessions.get(&sid) else { return };
            let luns: Vec<(LunId, u16, String)> =
                e.luns.iter().filter_map(|id| st.luns.get(id).map(|l| (*id, l.info.lun, l.info.wwid.clone()))).collect();
            (e.session.clone(), luns, Self::probe_limit(&e.timeouts))
        };
        let mut stale = Vec::new();
        for (id, n, old) in &luns {
            if old.is_empty() {
                continue;
            }
            let ids = match tokio::time::timeout(limit, session.inquiry_vpd(*n, 0x83)).await {
                Ok(Ok(b)) => lunlink_scsi::inquiry::parse_device_identification(&b).ok(),
                _ => None,
            };
            let now = ids.as_ref().and_then(|ids| lunlink_scsi::inquiry::best_wwid(ids).map(|w| w.to_string()));
            if let (Some(ids), Some(w)) = (&ids, &now) {
                if w == old {
                    // The same LU, maybe through another target port (group) than before.
                    self.alua_port_read(*id, ids);
                }
            }
            match now {
                Some(w) if &w != old => {
                    tracing::error!(
                        session = sid, lun = n, before = %old, now = %w,
                        "after the relogin LUN {n} answers for another logical unit (a LUN number reused on the \
                         target): it leaves {old}, whose device never sees it again, and comes back as a new LUN"
                    );
                    stale.push(*id);
                }
                Some(_) => {}
                None => tracing::warn!(session = sid, lun = n, "cannot read LUN {n}'s identity after the relogin; trusting it"),
            }
        }
        for id in &stale {
            self.remove_lun(sid, *id, true).await;
        }
        self.hold_paths(sid, false);
        if !stale.is_empty() {
            if let Err(e) = self.rescan(sid).await {
                tracing::warn!(session = sid, "rescan after an identity change failed: {e}");
            }
        }
    }

    /// Shows a session's connection state on its object.
    pub(super) fn link_changed(&self, sid: SessionId, link: engine::LinkState) {
        let new = match link {
            engine::LinkState::LoggedIn => SessionState::LoggedIn,
            engine::LinkState::Reconnecting => SessionState::Reconnecting,
            engine::LinkState::Down => SessionState::Failed,
        };
        let changed = {
            let mut st = self.lock();
            match st.sessions.get_mut(&sid) {
                Some(e) if e.state != SessionState::LoggingOut && e.state != new => {
                    e.state = new;
                    true
                }
                _ => false,
            }
        };
        if changed {
            tracing::info!(session = sid, state = new.as_str(), "session state");
            self.emit(Change::SessionChanged(sid));
        }
    }

    /// CAPACITY DATA HAS CHANGED on LUN `n`: reads the new capacity and shows it on the Lun
    /// object. The block device keeps the size it was made with (online resize of ublk devices
    /// is not implemented): the log says so, and a new login makes a device of the new size.
    pub(super) async fn capacity_changed(&self, sid: SessionId, n: u16) {
        let Some(session) = self.lock().sessions.get(&sid).map(|e| e.session.clone()) else { return };
        let cap = match session.read_capacity(n).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(session = sid, lun = n, "capacity changed, but READ CAPACITY failed: {e}");
                return;
            }
        };
        let changed = {
            let mut st = self.lock();
            let ids: Vec<LunId> = st.sessions.get(&sid).map(|e| e.luns.clone()).unwrap_or_default();
            ids.into_iter().find(|id| st.luns.get(id).is_some_and(|l| l.info.lun == n)).and_then(|id| {
                let l = st.luns.get_mut(&id)?;
                let old = l.info.capacity.map(|c| c.bytes());
                l.info.capacity = Some(cap);
                Some((id, old, l.device.clone()))
            })
        };
        if let Some((id, old, device)) = changed {
            tracing::warn!(
                session = sid,
                lun = n,
                old_bytes = ?old,
                new_bytes = cap.bytes(),
                "the LU's capacity changed; {} keeps its size until the next login",
                if device.is_empty() { "the block device (none now)" } else { device.as_str() }
            );
            self.emit(Change::LunChanged(id));
        }
    }

    /// Brings the session's LUN objects in line with REPORT LUNS.
    pub async fn rescan(&self, sid: SessionId) -> Result<(), DaemonError> {
        let session = {
            let st = self.lock();
            st.sessions
                .get(&sid)
                .ok_or_else(|| DaemonError::NotFound("no such session".into()))?
                .session
                .clone()
        };
        let reported = session
            .report_luns()
            .await
            .map_err(|e| DaemonError::Failed(format!("REPORT LUNS failed: {e}")))?;
        let known: Vec<(LunId, u16)> = {
            let st = self.lock();
            let e = st
                .sessions
                .get(&sid)
                .ok_or_else(|| DaemonError::NotFound("session ended".into()))?;
            e.luns
                .iter()
                .filter_map(|id| st.luns.get(id).map(|l| (*id, l.info.lun)))
                .collect()
        };
        for (id, n) in &known {
            if !reported.contains(n) {
                // A LUN that vanished while its device is mounted or held is not yanked from
                // under its user: it stays, marked offline (its IO fails at the target), until
                // a rescan finds it back or unused.
                if let Err(crate::device::DeviceError::InUse(why)) = self.devices.check_in_use(&[*id]).await {
                    let newly = {
                        let mut st = self.lock();
                        st.luns.get_mut(id).is_some_and(|l| !std::mem::replace(&mut l.offline, true))
                    };
                    if newly {
                        tracing::warn!(session = sid, lun = n, "LUN vanished from the target but its device is in use ({why}): marked offline");
                        self.emit(Change::LunChanged(*id));
                    }
                    continue;
                }
                self.remove_lun(sid, *id, false).await;
            }
        }
        for n in reported {
            if let Some((id, _)) = known.iter().find(|(_, k)| *k == n) {
                let back = {
                    let mut st = self.lock();
                    st.luns.get_mut(id).is_some_and(|l| std::mem::replace(&mut l.offline, false))
                };
                if back {
                    tracing::info!(session = sid, lun = n, "LUN is back: online again");
                    self.emit(Change::LunChanged(*id));
                }
                continue;
            }
            let info = match session.probe_lun(n).await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(session = sid, lun = n, "cannot probe LUN: {e}");
                    continue;
                }
            };
            // LUN 0 of many targets is a controller, not storage: only block devices count.
            if info.peripheral_type != 0 {
                continue;
            }
            let joined;
            let id = {
                let mut st = self.lock();
                if !st.sessions.contains_key(&sid) {
                    return Ok(());
                }
                let id = st.id();
                let device_error = match self.devices.availability() {
                    Ok(()) => DEVICE_CREATING.to_owned(),
                    Err(e) => e.to_string(),
                };
                let (lu, new_lu) = self.join_lu(&mut st, sid, id, &session, &info);
                joined = (lu, new_lu);
                st.luns.insert(
                    id,
                    LunEntry {
                        session: sid,
                        lu,
                        info: info.clone(),
                        device: String::new(),
                        device_error,
                        offline: false,
                    },
                );
                if let Some(e) = st.sessions.get_mut(&sid) {
                    e.luns.push(id);
                }
                id
            };
            self.emit(Change::LunAdded(id));
            match joined {
                (lu, true) => {
                    self.emit(Change::LuAdded(lu));
                    self.watch_lu(lu);
                }
                (lu, false) => self.emit(Change::LuChanged(lu)),
            }
            if self.devices.availability().is_ok() {
                let (device, device_error) = match self.devices.attach(id, &session, &info).await {
                    Ok(path) => (path, String::new()),
                    Err(e) => {
                        tracing::warn!(session = sid, lun = n, "no block device: {e}");
                        (String::new(), e.to_string())
                    }
                };
                let kept = match self.lock().luns.get_mut(&id) {
                    Some(l) => {
                        l.device = device;
                        l.device_error = device_error;
                        true
                    }
                    None => false,
                };
                if kept {
                    self.emit(Change::LunChanged(id));
                    self.emit(Change::LuChanged(joined.0));
                } else {
                    // The session went away meanwhile.
                    self.devices.detach(id).await;
                }
            }
        }
        self.emit(Change::SessionChanged(sid));
        Ok(())
    }
}
