//! Node records: discovery (SendTargets) and the records it finds, creating, changing and
//! deleting records, and saving them.

use super::*;

impl Manager {
    /// Nodes of `target`, optionally only the one on `portal`.
    pub fn find_nodes(&self, target: &str, portal: &str) -> Result<Vec<NodeId>, DaemonError> {
        // A malformed name is the caller's mistake, not a missing node: say what is wrong.
        // Uppercase is tolerated as in node records (targets report names byte for byte).
        crate::initiator_name::validate_name(&target.to_ascii_lowercase()).map_err(|e| {
            DaemonError::InvalidArgument(format!("target name {target:?} is not valid: {e}"))
        })?;
        let portal = if portal.is_empty() {
            None
        } else {
            Some(parse_portal(portal)?.to_string())
        };
        let st = self.lock();
        let ids: Vec<_> = st
            .nodes
            .iter()
            .filter(|(_, n)| {
                n.node.target == target && portal.as_deref().is_none_or(|p| n.node.portal == p)
            })
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Err(DaemonError::NotFound(match portal {
                Some(p) => format!(
                    "no node for target {target} on portal {p}: run discovery or create the node"
                ),
                None => format!("no node for target {target}: run discovery or create the node"),
            }));
        }
        Ok(ids)
    }

    // ---- operations ----

    /// SendTargets discovery; creates nodes for new (target, portal, tpgt) and keeps existing
    /// ones as they are.
    pub async fn discover(
        &self,
        portal: &str,
        s: &Settings,
    ) -> Result<Vec<(String, String, u16)>, DaemonError> {
        let portal = parse_portal(portal)?;
        let auth = s.apply_auth(&self.lock().discovery_auth);
        let auth = engine_auth(&auth)?;
        let timeout = self.config.timeouts.login_timeout();
        let found = engine::discover(&portal, &self.initiator_name(), auth, timeout)
            .await
            .map_err(|e| DaemonError::from_engine(e, &format!("discovery on {portal} failed")))?;
        let mut out = Vec::new();
        for t in found {
            for p in &t.portals {
                // A TargetAddress without a tag means the default portal group 1 (§13.8).
                out.push((t.name.clone(), p.portal.to_string(), p.tpgt.unwrap_or(1)));
            }
        }
        let startup = s.startup.unwrap_or_default();
        for (target, p, tpgt) in &out {
            let store = self.store.clone();
            let (t2, p2, tpgt) = (target.clone(), p.clone(), *tpgt);
            let up = tokio::task::spawn_blocking(move || {
                store.upsert_discovered(&t2, &p2, tpgt, startup)
            })
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?;
            match up {
                Ok(Upsert::Created(node)) => {
                    self.add_node(node);
                }
                Ok(Upsert::Existing(node)) => {
                    // Known on disk; make sure it is known in memory too (e.g. added by hand).
                    let key = node.key();
                    let added = {
                        let mut st = self.lock();
                        if st.node_by_key(&key).is_none() {
                            let id = st.id();
                            st.nodes.insert(
                                id,
                                NodeEntry {
                                    node,
                                    session: None,
                                    login_lock: Arc::default(),
                                },
                            );
                            Some(id)
                        } else {
                            None
                        }
                    };
                    if let Some(id) = added {
                        self.emit(Change::NodeAdded(id));
                    }
                }
                Err(e) => {
                    tracing::warn!(target = %target, portal = %p, "cannot record discovered node: {e}")
                }
            }
        }
        Ok(out)
    }

    /// Adds a node object and announces it.
    pub(super) fn add_node(&self, node: Node) -> NodeId {
        let id = {
            let mut st = self.lock();
            let id = st.id();
            st.nodes.insert(id, NodeEntry { node, session: None, login_lock: Arc::default() });
            id
        };
        self.emit(Change::NodeAdded(id));
        id
    }

    /// A static node (no discovery). An existing node is returned as it is, unless settings
    /// are given, which are then applied.
    pub async fn create_node(
        &self,
        target: &str,
        portal: &str,
        s: &Settings,
    ) -> Result<NodeId, DaemonError> {
        let portal = parse_portal(portal)?.to_string();
        let key = NodeKey::new(target, &portal, 1)
            .map_err(|e| DaemonError::InvalidArgument(e.to_string()))?;
        let existing = {
            let st = self.lock();
            st.nodes
                .iter()
                .find(|(_, n)| n.node.target == key.target && n.node.portal == key.portal)
                .map(|(id, _)| *id)
        };
        if let Some(id) = existing {
            self.update_node(id, s).await?;
            return Ok(id);
        }
        let mut node = Node::new(key);
        self.apply_settings(&mut node, s)?;
        self.save(node.clone()).await?;
        Ok(self.add_node(node))
    }

    pub(super) fn apply_settings(&self, node: &mut Node, s: &Settings) -> Result<(), DaemonError> {
        if let Some(st) = s.startup {
            node.startup = st;
        }
        if s.has_auth() {
            let base = node
                .auth
                .clone()
                .unwrap_or_else(|| self.lock().session_auth.clone());
            let a = s.apply_auth(&base);
            engine_auth(&a)?;
            node.auth = Some(a);
        }
        if let Some(d) = &s.header_digest {
            node.negotiation.header_digest = Some(d.clone());
        }
        if let Some(d) = &s.data_digest {
            node.negotiation.data_digest = Some(d.clone());
        }
        if let Some(v) = s.replacement {
            node.timeouts.replacement = Some(v);
        }
        if let Some(v) = s.noop_interval {
            node.timeouts.noop_interval = Some(v);
        }
        if let Some(v) = s.noop_timeout {
            node.timeouts.noop_timeout = Some(v);
        }
        if let Some(p) = &s.multipath_policy {
            node.multipath_policy = Some(p.clone());
        }
        node.validate()
            .map_err(|e| DaemonError::InvalidArgument(e.to_string()))
    }

    pub(super) async fn save(&self, node: Node) -> Result<(), DaemonError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.save(&node))
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?
            .map_err(|e| DaemonError::Failed(format!("cannot save node record: {e}")))
    }

    /// Changes a node's settings; returns when they take effect ("now" or "next-login").
    pub async fn update_node(&self, id: NodeId, s: &Settings) -> Result<&'static str, DaemonError> {
        let (mut node, logged_in) = {
            let st = self.lock();
            let e = st
                .nodes
                .get(&id)
                .ok_or_else(|| DaemonError::NotFound("no such node".into()))?;
            (e.node.clone(), e.session.is_some())
        };
        self.apply_settings(&mut node, s)?;
        self.save(node.clone()).await?;
        if let Some(e) = self.lock().nodes.get_mut(&id) {
            e.node = node;
        }
        self.emit(Change::NodeChanged(id));
        // Startup applies now; everything else is negotiated at login.
        let only_startup = !s.has_auth()
            && s.header_digest.is_none()
            && s.data_digest.is_none()
            && s.replacement.is_none()
            && s.noop_interval.is_none()
            && s.noop_timeout.is_none()
            && s.multipath_policy.is_none();
        Ok(if logged_in && !only_startup {
            "next-login"
        } else {
            "now"
        })
    }

    pub async fn delete_node(&self, id: NodeId) -> Result<(), DaemonError> {
        let (key, _no_login) = {
            let st = self.lock();
            let e = st
                .nodes
                .get(&id)
                .ok_or_else(|| DaemonError::NotFound("no such node".into()))?;
            if e.session.is_some() {
                return Err(DaemonError::InUse(format!(
                    "node {} on {} is logged in: log out first",
                    e.node.target, e.node.portal
                )));
            }
            // Held until the node is gone, so no login starts meanwhile; one already running
            // would leave a session without its node.
            let guard = e.login_lock.clone().try_lock_owned().map_err(|_| {
                DaemonError::InUse(format!(
                    "node {} on {} is logging in: wait for the login to end, log out, then delete",
                    e.node.target, e.node.portal
                ))
            })?;
            (e.node.key(), guard)
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.delete(&key))
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?
            .map_err(|e| DaemonError::Failed(format!("cannot delete node record: {e}")))?;
        self.lock().nodes.remove(&id);
        self.emit(Change::NodeRemoved(id));
        Ok(())
    }
}
