//! Sessions coming and going: logging in to nodes (one, several in parallel, every automatic
//! one at start), the bounds on those operations, taking over the devices of a previous
//! daemon, logging out.

use super::*;

impl Manager {
    /// Logs in to one node; a node that already has a session returns it.
    pub async fn login_node(
        self: &Arc<Self>,
        id: NodeId,
        s: &Settings,
    ) -> Result<SessionId, DaemonError> {
        let lock = {
            let st = self.lock();
            st.nodes
                .get(&id)
                .ok_or_else(|| DaemonError::NotFound("no such node".into()))?
                .login_lock
                .clone()
        };
        let _guard = lock.lock().await;
        let (node, session_auth) = {
            let st = self.lock();
            let e = st
                .nodes
                .get(&id)
                .ok_or_else(|| DaemonError::NotFound("node deleted during login".into()))?;
            if let Some(sid) = e.session {
                return Ok(sid);
            }
            (e.node.clone(), st.session_auth.clone())
        };
        let auth = s.apply_auth(node.effective_auth(&session_auth));
        let neg = node.effective_negotiation(&self.config.negotiation);
        let timeouts = node.effective_timeouts(&self.config.timeouts);
        let digests = |call: &Option<Vec<Digest>>, node: &[Digest]| -> Vec<engine::Digest> {
            call.as_deref().unwrap_or(node).iter().map(|d| engine_digest(*d)).collect()
        };
        let offer = engine::Offer {
            header_digest: digests(&s.header_digest, &neg.header_digest),
            data_digest: digests(&s.data_digest, &neg.data_digest),
            max_recv_data_segment_length: neg.max_recv_data_segment_length,
            max_burst_length: neg.max_burst_length,
            first_burst_length: neg.first_burst_length,
            immediate_data: neg.immediate_data,
            initial_r2t: neg.initial_r2t,
            ..engine::Offer::default()
        };
        let mut isid: [u8; 6] = rand::random();
        isid[0] = 0x80; // random-qualifier format (RFC 7143 §11.12.5)
        let cfg = SessionConfig {
            initiator_name: self.initiator_name(),
            initiator_alias: self.config.initiator.alias.clone(),
            target_name: node.target.clone(),
            portal: parse_portal(&node.portal)?,
            auth: engine_auth(&auth)?,
            offer,
            isid,
            queue_depth: self.config.devices.queue_depth,
            timeouts: engine::Timeouts {
                login: timeouts.login_timeout(),
                logout: timeouts.logout_timeout(),
                noop_interval: timeouts.noop_interval(),
                noop_timeout: timeouts.noop_timeout().unwrap_or(Duration::from_secs(5)),
                command: Some(timeouts.command_timeout()).filter(|d| !d.is_zero()),
                replacement: match timeouts.replacement_policy() {
                    config::Replacement::FailAtOnce => Some(Duration::ZERO),
                    config::Replacement::After(d) => Some(d),
                    config::Replacement::QueueForever => None,
                },
            },
        };
        let session = Session::login(cfg).await.map_err(|e| {
            DaemonError::from_engine(
                e,
                &format!("login to {} on {} failed", node.target, node.portal),
            )
        })?;
        let sid = {
            let mut st = self.lock();
            let sid = st.id();
            st.sessions.insert(
                sid,
                SessionEntry {
                    node: id,
                    session: session.clone(),
                    state: SessionState::LoggedIn,
                    luns: Vec::new(),
                    timeouts: timeouts.clone(),
                },
            );
            if let Some(e) = st.nodes.get_mut(&id) {
                e.session = Some(sid);
            }
            sid
        };
        self.emit(Change::SessionAdded(sid));
        self.emit(Change::NodeChanged(id));
        tracing::info!(target = %node.target, portal = %node.portal, session = sid, "logged in");
        self.spawn_monitor(sid, &session);
        // The scan runs as a task of its own: a target that stops answering now makes the
        // Login call fail within its bound, while the session and the scan go on.
        let probe = Self::probe_limit(&timeouts);
        let scan = {
            let me = self.clone();
            tokio::spawn(async move { me.rescan(sid).await })
        };
        match tokio::time::timeout(probe, scan).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(session = sid, "LUN scan failed: {e}"),
            Ok(Err(e)) => tracing::warn!(session = sid, "LUN scan failed: {e}"),
            Err(_) => {
                tracing::warn!(session = sid, "the LUN scan did not finish within {probe:?}; it goes on");
                return Err(DaemonError::Timeout(format!(
                    "logged in to {} on {}, but the target did not answer the LUN scan (REPORT LUNS, INQUIRY) \
                     within {} s; the session stays, its State shows whether it is reconnecting, and the scan \
                     goes on: log the session out to give up",
                    node.target,
                    node.portal,
                    probe.as_secs()
                )));
            }
        }
        Ok(sid)
    }

    /// The LUN scan's share of a login's bound: one command timeout.
    pub(super) fn probe_limit(t: &config::Timeouts) -> Duration {
        Some(t.command_timeout()).filter(|d| !d.is_zero()).unwrap_or(PROBE_LIMIT)
    }

    /// How long a Login of `node` (or of the slowest node when None) may take: its login
    /// timeout, then one command timeout for the LUN scan, plus slack. LoginAll, running
    /// `LOGIN_PARALLEL` logins at once, takes this once per round of them.
    pub fn login_bound(&self, node: Option<NodeId>) -> Duration {
        let st = self.lock();
        let one = |t: &config::Timeouts| t.login_timeout() + Self::probe_limit(t);
        let nodes: Vec<config::Timeouts> = match node {
            Some(id) => st.nodes.get(&id).map(|n| n.node.effective_timeouts(&self.config.timeouts)).into_iter().collect(),
            None => st.nodes.values().map(|n| n.node.effective_timeouts(&self.config.timeouts)).collect(),
        };
        nodes.iter().map(one).max().unwrap_or_else(|| one(&self.config.timeouts)) + SLACK
    }

    /// Bound of LoginAll over `n` nodes.
    pub fn login_all_bound(&self, n: usize) -> Duration {
        let rounds = u32::try_from(n.div_ceil(LOGIN_PARALLEL).max(1)).unwrap_or(u32::MAX);
        self.login_bound(None) * rounds
    }

    /// Bound of Discover: the login of the discovery session, then the SendTargets exchange,
    /// each within the login timeout.
    pub fn discover_bound(&self) -> Duration {
        self.config.timeouts.login_timeout() * 2 + SLACK
    }

    /// Bound of Logout: devices go first (their IO in flight gets one command timeout), then
    /// the logout exchange.
    pub fn logout_bound(&self, sid: SessionId) -> Duration {
        let t = self.lock().sessions.get(&sid).map_or_else(|| self.config.timeouts.clone(), |e| e.timeouts.clone());
        t.logout_timeout() + Self::probe_limit(&t) + SLACK
    }

    /// Bound of Rescan: REPORT LUNS and the probes of new LUNs, one command timeout.
    pub fn rescan_bound(&self, sid: SessionId) -> Duration {
        let t = self.lock().sessions.get(&sid).map_or_else(|| self.config.timeouts.clone(), |e| e.timeouts.clone());
        Self::probe_limit(&t) + SLACK
    }

    /// Logs in to `target` on `portal` (or on every known portal when empty, all at once);
    /// returns the first session.
    pub async fn login(
        self: &Arc<Self>,
        target: &str,
        portal: &str,
        s: &Settings,
    ) -> Result<SessionId, DaemonError> {
        let ids = self.find_nodes(target, portal)?;
        let mut first = None;
        let mut last_err = None;
        for (_, r) in self.login_nodes(ids, s).await {
            match r {
                Ok(sid) => {
                    first.get_or_insert(sid);
                }
                Err(e) => last_err = Some(e),
            }
        }
        match (first, last_err) {
            (Some(sid), _) => Ok(sid),
            (None, Some(e)) => Err(e),
            (None, None) => Err(DaemonError::NotFound(format!(
                "no node for target {target}"
            ))),
        }
    }

    /// Logs in to `ids`, `LOGIN_PARALLEL` at a time; results in the order of `ids`.
    pub(super) async fn login_nodes(self: &Arc<Self>, ids: Vec<NodeId>, s: &Settings) -> Vec<LoginResult> {
        let gate = Arc::new(tokio::sync::Semaphore::new(LOGIN_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, id) in ids.iter().copied().enumerate() {
            let (me, s, gate) = (self.clone(), s.clone(), gate.clone());
            tasks.spawn(async move {
                let _turn = gate.acquire_owned().await;
                (i, me.login_node(id, &s).await)
            });
        }
        let mut out: Vec<Option<Result<SessionId, DaemonError>>> = ids.iter().map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((i, r)) => out[i] = Some(r),
                Err(e) => tracing::error!("a login task failed: {e}"),
            }
        }
        ids.into_iter()
            .zip(out)
            .map(|(id, r)| (id, r.unwrap_or_else(|| Err(DaemonError::Failed("the login task failed inside lunlinkd".into())))))
            .collect()
    }

    /// Logs in to every node (or every automatic one), `LOGIN_PARALLEL` at a time, and says
    /// for each node what happened.
    pub async fn login_each(self: &Arc<Self>, automatic_only: bool) -> Vec<LoginResult> {
        let ids: Vec<NodeId> = {
            let st = self.lock();
            st.nodes
                .iter()
                .filter(|(_, n)| !automatic_only || n.node.startup == Startup::Automatic)
                .map(|(id, _)| *id)
                .collect()
        };
        let results = self.login_nodes(ids, &Settings::default()).await;
        for (id, r) in &results {
            if let Err(e) = r {
                tracing::warn!(node = id, "login failed: {e}");
            }
        }
        results
    }

    /// Logs in to every node (or every automatic one); the sessions made, or an error when
    /// every login failed (`login_each` says which failed and why).
    pub async fn login_all(
        self: &Arc<Self>,
        automatic_only: bool,
    ) -> Result<Vec<SessionId>, DaemonError> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (_, r) in self.login_each(automatic_only).await {
            match r {
                Ok(sid) => out.push(sid),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if out.is_empty() && !errors.is_empty() {
            return Err(DaemonError::LoginFailed(errors.join("; ")));
        }
        Ok(out)
    }

    /// Logs in to automatic nodes in the background, retrying each with backoff until its
    /// target answers (a first login that gives up would leave the admin with nothing).
    ///
    /// Returns how many nodes there are and a receiver that gets one message per node once its
    /// first attempt ended (logged in or not), so that the daemon can hold back READY, and with
    /// it remote-fs.target, until automatic nodes had their chance to log in.
    pub fn spawn_auto_login(self: &Arc<Self>) -> (usize, mpsc::UnboundedReceiver<()>) {
        let (first_done, rx) = mpsc::unbounded_channel();
        let ids: Vec<NodeId> = {
            let st = self.lock();
            st.nodes
                .iter()
                .filter(|(_, n)| n.node.startup == Startup::Automatic)
                .map(|(id, _)| *id)
                .collect()
        };
        let n = ids.len();
        for id in ids {
            let me = Arc::downgrade(self);
            let first_done = first_done.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                loop {
                    let Some(m) = me.upgrade() else { return };
                    if !m.lock().nodes.contains_key(&id) {
                        let _ = first_done.send(());
                        return;
                    }
                    let r = m.login_node(id, &Settings::default()).await;
                    let _ = first_done.send(());
                    match r {
                        Ok(_) => return,
                        Err(e) => tracing::info!(
                            node = id,
                            "automatic login failed, retrying in {delay:?}: {e}"
                        ),
                    }
                    drop(m);
                    let jitter = Duration::from_millis(rand::random::<u64>() % 500);
                    tokio::time::sleep(delay + jitter).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            });
        }
        (n, rx)
    }

    /// Takes over the block devices a previous daemon left (a crash or SIGKILL; their IO
    /// waits in the kernel): logs in to each one's target and portal again (retrying with
    /// backoff, like automatic nodes), and the LUN scan of the new session re-attaches the
    /// device. A device whose LU stays unreachable for the node's `replacement` timeout is
    /// taken over without a path, so its IO fails with EIO instead of waiting; it works
    /// again once a session to the LU logs in. `replacement = -1` waits for ever, 0 waits
    /// for one login timeout.
    pub fn spawn_recovery(self: &Arc<Self>) {
        let orphans = self.devices.orphans();
        let mut groups: Vec<((String, String), Vec<crate::device::OrphanInfo>)> = Vec::new();
        for o in orphans {
            let k = (o.target.clone(), o.portal.clone());
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(o),
                None => groups.push((k, vec![o])),
            }
        }
        for ((target, portal), devs) in groups {
            let names: Vec<&str> = devs.iter().map(|d| d.device.as_str()).collect();
            let nodes = self.find_nodes(&target, &portal).unwrap_or_default();
            let timeouts = {
                let st = self.lock();
                match nodes.first().and_then(|id| st.nodes.get(id)) {
                    Some(n) => n.node.effective_timeouts(&self.config.timeouts),
                    None => self.config.timeouts.clone(),
                }
            };
            let give_up = match timeouts.replacement_policy() {
                config::Replacement::After(d) => Some(d),
                config::Replacement::FailAtOnce => Some(timeouts.login_timeout()),
                config::Replacement::QueueForever => None,
            };
            if let Some(after) = give_up {
                let keys: Vec<String> = devs.iter().map(|d| d.key.clone()).collect();
                let me = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let Some(m) = me.upgrade() else { return };
                    for k in keys {
                        m.devices.release_orphan(&k).await;
                    }
                });
            }
            let Some(&node) = nodes.first() else {
                tracing::error!(
                    target = %target, portal = %portal, devices = ?names,
                    "no node record for the target of devices left by a previous daemon: their IO waits{}",
                    match give_up { Some(d) => format!(" {}s, then fails", d.as_secs()), None => " (replacement = -1)".into() }
                );
                continue;
            };
            tracing::info!(target = %target, portal = %portal, devices = ?names, "logging in again for devices left by a previous daemon");
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                loop {
                    let Some(m) = me.upgrade() else { return };
                    if !m.lock().nodes.contains_key(&node) {
                        return;
                    }
                    match m.login_node(node, &Settings::default()).await {
                        Ok(_) => return,
                        Err(e) => tracing::warn!(
                            target = %target, portal = %portal,
                            "login for devices left by a previous daemon failed, retrying in {delay:?}: {e}"
                        ),
                    }
                    drop(m);
                    let jitter = Duration::from_millis(rand::random::<u64>() % 500);
                    tokio::time::sleep(delay + jitter).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            });
        }
    }

    /// Logs out. Refuses while a device of the session is in use unless `force`.
    pub async fn logout(&self, sid: SessionId, force: bool) -> Result<(), DaemonError> {
        if !force {
            let luns = self.lock().sessions.get(&sid).map(|e| e.luns.clone()).unwrap_or_default();
            if let Err(e) = self.devices.check_in_use(&luns).await {
                return Err(DaemonError::InUse(format!(
                    "{e} (log out with force to remove the device anyway)"
                )));
            }
        }
        let session = {
            let mut st = self.lock();
            let e = st
                .sessions
                .get_mut(&sid)
                .ok_or_else(|| DaemonError::NotFound("no such session".into()))?;
            if e.state == SessionState::LoggingOut {
                return Err(DaemonError::InUse(
                    "the session is already logging out".into(),
                ));
            }
            e.state = SessionState::LoggingOut;
            e.session.clone()
        };
        self.emit(Change::SessionChanged(sid));
        // Devices first: their IO in flight and the dirty pages the kernel writes back when a
        // disk goes away still need the session. A session that is not logged in cannot
        // serve that IO (it may wait for a reconnect for ever): it ends first, so the IO
        // fails and the devices can go.
        let luns = self.lock().sessions.get(&sid).map(|e| e.luns.clone()).unwrap_or_default();
        let detach = async {
            for l in luns {
                self.devices.detach(l).await;
            }
        };
        tokio::pin!(detach);
        let mut ended_first = false;
        loop {
            tokio::select! {
                () = &mut detach => break,
                () = tokio::time::sleep(Duration::from_millis(500)), if !ended_first => {
                    if session.link_state() != engine::LinkState::LoggedIn {
                        tracing::warn!(session = sid, "the session is down: ending it before its devices");
                        ended_first = true;
                        let _ = session.logout().await;
                    }
                }
            }
        }
        let result = session.logout().await;
        if let Err(e) = &result {
            tracing::warn!(session = sid, "logout was not clean: {e}");
        }
        self.remove_session(sid);
        Ok(())
    }

    pub(super) fn remove_session(&self, sid: SessionId) {
        let (luns, node, lu_changes, paths) = {
            let mut st = self.lock();
            let Some(e) = st.sessions.remove(&sid) else {
                return;
            };
            // The multipath layer of each LU, taken before the LU entries may go.
            let paths: Vec<(LunId, Arc<lunlink_multipath::LogicalUnit>)> = e
                .luns
                .iter()
                .filter_map(|l| {
                    let lu = st.luns.get(l)?.lu;
                    Some((*l, st.lus.get(&lu)?.mp.clone()))
                })
                .collect();
            let lu_changes = self.leave_lus(&mut st, &e.luns);
            for l in &e.luns {
                st.luns.remove(l);
            }
            if let Some(n) = st.nodes.get_mut(&e.node) {
                if n.session == Some(sid) {
                    n.session = None;
                }
            }
            (e.luns, e.node, lu_changes, paths)
        };
        self.drop_paths_later(paths);
        for l in luns {
            self.emit(Change::LunRemoved(l));
        }
        for c in lu_changes {
            self.emit(c);
        }
        self.emit(Change::SessionRemoved(sid));
        self.emit(Change::NodeChanged(node));
    }

    /// Logs out of everything (daemon shutdown).
    pub async fn logout_all(&self) {
        for sid in self.session_ids() {
            let _ = self.logout(sid, true).await;
        }
    }
}
