//! The daemon's domain: nodes, sessions and logical units, and the operations on them.
//!
//! Nothing here knows about D-Bus: operations return what they did, and every state change is
//! announced as a [`Change`] on a channel that the D-Bus adaptor turns into InterfacesAdded /
//! PropertiesChanged / InterfacesRemoved. Blocking file I/O (node records) runs on tokio's
//! blocking pool; no lock is held across an await.
//!
//! This file holds the types (changes, errors, views, the state behind one lock), the
//! [`Manager`] itself with the initiator name and default credentials, and the views of
//! objects. The operations, by concern: [`nodes`] (records, discovery), [`logins`] (login,
//! logout, their bounds, recovery at start), [`events`] (a session's life after login:
//! reconnects, unit attentions, identity checks, rescans), [`lus`] (logical units and paths).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lunlink_engine::{self as engine, EngineError, Portal, Session, SessionConfig, SessionEvent};
use lunlink_proto::login::LoginError;
use tokio::sync::mpsc;

use crate::config::{self, AuthMethod, Config, Digest};
use crate::nodes::{Node, NodeKey, NodeStore, Startup, Upsert};

mod events;
mod logins;
mod lus;
mod nodes;

pub type NodeId = u64;
pub type SessionId = u64;
pub type LunId = u64;
pub type LuId = u64;

/// What happened to an object; the adaptor mirrors it on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    NodeAdded(NodeId),
    NodeChanged(NodeId),
    NodeRemoved(NodeId),
    SessionAdded(SessionId),
    SessionChanged(SessionId),
    SessionRemoved(SessionId),
    LunAdded(LunId),
    LunChanged(LunId),
    LunRemoved(LunId),
    /// A Manager property (the initiator name).
    ManagerChanged,
    LuAdded(LuId),
    /// Its state, policy, queued IO or paths (and so its paths' PathState).
    LuChanged(LuId),
    LuRemoved(LuId),
}

/// Failures of daemon operations, by what a client can do about them. The adaptor maps each
/// variant to the D-Bus error of the same name.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    AuthenticationFailed(String),
    #[error("{0}")]
    TargetNotFound(String),
    #[error("{0}")]
    ConnectionFailed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    LoginFailed(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    Failed(String),
}

impl DaemonError {
    /// The message names the operation and its target: a caller of Login with an empty
    /// portal, or of LoginAll, cannot tell otherwise which node failed.
    fn from_engine(e: EngineError, what: &str) -> Self {
        let msg = format!("{what}: {e}");
        match &e {
            EngineError::Login(l) => match l {
                LoginError::AuthenticationFailed { .. }
                | LoginError::AuthorizationFailed
                | LoginError::Chap(_) => DaemonError::AuthenticationFailed(msg),
                LoginError::TargetNotFound | LoginError::TargetRemoved => {
                    DaemonError::TargetNotFound(msg)
                }
                _ => DaemonError::LoginFailed(msg),
            },
            EngineError::ClosedDuringSecurity { .. } => DaemonError::AuthenticationFailed(msg),
            EngineError::Resolve { .. }
            | EngineError::Connect { .. }
            | EngineError::Io { .. }
            | EngineError::Closed(_) => DaemonError::ConnectionFailed(msg),
            EngineError::Timeout(..) => DaemonError::Timeout(msg),
            EngineError::InvalidPortal(_) => DaemonError::InvalidArgument(msg),
            _ => DaemonError::Protocol(msg),
        }
    }
}

/// Settings a caller passes with Discover / Login / CreateNode / Update (all optional).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub auth_method: Option<AuthMethod>,
    pub username: Option<String>,
    pub password: Option<config::Secret>,
    pub reverse_username: Option<String>,
    pub reverse_password: Option<config::Secret>,
    pub chap_algorithms: Option<Vec<config::ChapAlgorithm>>,
    pub startup: Option<Startup>,
    pub header_digest: Option<Vec<Digest>>,
    pub data_digest: Option<Vec<Digest>>,
    /// The node's own timeouts (seconds).
    pub replacement: Option<i32>,
    pub noop_interval: Option<u32>,
    pub noop_timeout: Option<u32>,
    pub multipath_policy: Option<String>,
}

impl Settings {
    fn has_auth(&self) -> bool {
        self.auth_method.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.reverse_username.is_some()
            || self.reverse_password.is_some()
            || self.chap_algorithms.is_some()
    }

    /// `base` with these settings applied over it.
    fn apply_auth(&self, base: &config::Auth) -> config::Auth {
        let mut a = base.clone();
        if let Some(u) = &self.username {
            a.username = Some(u.clone());
            a.method = AuthMethod::Chap;
        }
        if let Some(p) = &self.password {
            a.password = Some(p.clone());
        }
        if let Some(u) = &self.reverse_username {
            a.reverse_username = Some(u.clone());
        }
        if let Some(p) = &self.reverse_password {
            a.reverse_password = Some(p.clone());
        }
        if let Some(c) = &self.chap_algorithms {
            a.chap_algorithms = c.clone();
        }
        if let Some(m) = self.auth_method {
            a.method = m;
            if m == AuthMethod::None {
                // Turning CHAP off forgets the credentials: a record that keeps them next to
                // method "none" is refused when loaded (see `config::Auth::validate`).
                a.username = None;
                a.password = None;
                a.reverse_username = None;
                a.reverse_password = None;
            }
        }
        a
    }
}

/// Session states shown on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    LoggedIn,
    /// The connection was lost; logging in again while IO waits.
    Reconnecting,
    /// Still logging in again, but the replacement timeout expired: IO fails.
    Failed,
    LoggingOut,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::LoggedIn => "logged-in",
            SessionState::Reconnecting => "reconnecting",
            SessionState::Failed => "failed",
            SessionState::LoggingOut => "logging-out",
        }
    }
}

/// Read-only views for the adaptor.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub target: String,
    pub portal: String,
    pub tpgt: u16,
    pub startup: Startup,
    pub auth_method: AuthMethod,
    pub username: String,
    pub reverse_username: String,
    pub session: Option<SessionId>,
    /// The node's own digest offers (empty: the config's).
    pub header_digest: Vec<&'static str>,
    pub data_digest: Vec<&'static str>,
    /// The node's own timeouts (missing: the config's).
    pub timeouts: crate::config::TimeoutOverrides,
    /// The node's path policy ("": the config's).
    pub multipath_policy: String,
}

#[derive(Debug, Clone)]
pub struct SessionView {
    pub target: String,
    pub portal: String,
    pub node: NodeId,
    pub state: SessionState,
    pub isid: String,
    pub tsih: u16,
    pub params: engine::SessionParams,
    pub luns: Vec<LunId>,
    pub commands: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Commands that failed to their caller (after retries).
    pub errors: u64,
    /// Commands sent again after a retryable status (unit attention, BUSY, ...).
    pub retries: u64,
    pub unit_attentions: u64,
    pub timeouts: config::Timeouts,
}

#[derive(Debug, Clone)]
pub struct LunView {
    pub info: engine::LunInfo,
    pub size: u64,
    pub block_size: u32,
    pub device: String,
    pub device_error: String,
    pub session: SessionId,
    pub offline: bool,
    /// The session's target and portal (the path this LUN is reached by).
    pub target: String,
    pub portal: String,
    pub lu: LuId,
    /// As a path of its LU: active, standby, failed, held-out.
    pub path_state: String,
    /// Commands of its LU in flight on this path.
    pub in_flight: u32,
    /// The ALUA access state of its target port group ("" without ALUA or not read yet).
    pub access_state: &'static str,
    /// Its target port group (VPD 0x83), when the LU names one.
    pub target_port_group: Option<u16>,
}

/// A logical unit as the adaptor shows it.
#[derive(Debug, Clone)]
pub struct LuView {
    pub key: String,
    pub info: engine::LunInfo,
    pub size: u64,
    pub block_size: u32,
    pub device: String,
    pub paths: Vec<LunId>,
    pub policy: &'static str,
    pub state: &'static str,
    pub queued: u32,
    /// Target and portal of its first path (for the by-path name).
    pub target: String,
    pub portal: String,
}

struct NodeEntry {
    node: Node,
    session: Option<SessionId>,
    /// Serialises logins of this node, so two Logins return the same session.
    login_lock: Arc<tokio::sync::Mutex<()>>,
}

struct SessionEntry {
    node: NodeId,
    session: Session,
    state: SessionState,
    luns: Vec<LunId>,
    /// The timeouts this session runs with (config and node overrides, as of its login).
    timeouts: config::Timeouts,
}

struct LunEntry {
    session: SessionId,
    /// The logical unit this LUN is a path to.
    lu: LuId,
    info: engine::LunInfo,
    device: String,
    device_error: String,
    /// Gone from REPORT LUNS while its device was in use: kept, marked offline.
    offline: bool,
}

/// A logical unit: the LUNs (paths) of every session that reach it, by its key (WWID).
struct LuEntry {
    key: String,
    mp: Arc<lunlink_multipath::LogicalUnit>,
    luns: Vec<LunId>,
}

#[derive(Default)]
struct State {
    lus: BTreeMap<LuId, LuEntry>,
    next_id: u64,
    nodes: BTreeMap<NodeId, NodeEntry>,
    sessions: BTreeMap<SessionId, SessionEntry>,
    luns: BTreeMap<LunId, LunEntry>,
    session_auth: config::Auth,
    discovery_auth: config::Auth,
    /// What SetDefaultAuth set, as kept in [`DEFAULT_AUTH_FILE`].
    stored_defaults: StoredDefaults,
}

/// File in the state directory that keeps the defaults set with SetDefaultAuth. It holds
/// secrets, so it is 0600 and written atomically like node records.
pub const DEFAULT_AUTH_FILE: &str = "default-auth.toml";

/// The content of [`DEFAULT_AUTH_FILE`]: a scope set over D-Bus replaces the config file's
/// `[auth.session]` / `[auth.discovery]`; a scope never set keeps following the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<config::Auth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discovery: Option<config::Auth>,
}

const DEFAULT_AUTH_HEADER: &str = "# lunlink default credentials, written by lunlinkd on SetDefaultAuth \
                                   (lunlinkctl set-default-auth).\n\
                                   # They replace the config file's [auth.session] / [auth.discovery].\n";

impl StoredDefaults {
    /// Reads the file; `Ok(None)` when there is none. Errors name the line and key.
    fn load(path: &std::path::Path) -> Result<Option<StoredDefaults>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        let d: StoredDefaults = config::parse_toml(&text).map_err(|p| p.to_string())?;
        for (name, auth) in [("session", &d.session), ("discovery", &d.discovery)] {
            if let Some(a) = auth {
                a.validate(name).map_err(|e| e.locate(&text).to_string())?;
            }
        }
        Ok(Some(d))
    }

    fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let body = toml::to_string(self).map_err(|e| format!("cannot render it: {e}"))?;
        crate::nodes::write_file_atomic(
            path,
            format!("{DEFAULT_AUTH_HEADER}{body}").as_bytes(),
            0o600,
            true,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    fn node_by_key(&self, key: &NodeKey) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(_, n)| &n.node.key() == key)
            .map(|(id, _)| *id)
    }
}

/// DeviceError of a LUN while its block device is being made.
const DEVICE_CREATING: &str = "the block device is being created";

/// Bound of operations on lunlink's own files and state (node records, defaults): they
/// never wait for a target.
pub const FILE_IO_LIMIT: Duration = Duration::from_secs(10);
/// Time on top of a bound derived from the target timeouts, for the daemon's own work
/// (records, block devices, the bus).
const SLACK: Duration = Duration::from_secs(5);
/// The post-login LUN scan's budget when commands have no timeout (`command = 0`).
const PROBE_LIMIT: Duration = Duration::from_secs(30);
/// Logins that LoginAll runs at once.
const LOGIN_PARALLEL: usize = 16;

/// Runs `work` as a task of its own and waits for it at most `bound`. Past the bound the
/// caller gets a Timeout naming `what`, while the work goes on in the background (stopping it
/// halfway could leave a session or a device half made).
pub async fn bounded<T: Send + 'static>(
    bound: Duration,
    what: impl std::fmt::Display,
    work: impl std::future::Future<Output = Result<T, DaemonError>> + Send + 'static,
) -> Result<T, DaemonError> {
    let task = tokio::spawn(work);
    match tokio::time::timeout(bound, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(DaemonError::Failed(format!("{what} failed inside lunlinkd: {e}"))),
        Err(_) => Err(DaemonError::Timeout(format!(
            "{what} did not finish within {} s; it goes on in the background",
            bound.as_secs()
        ))),
    }
}

/// What LoginAll did for one node.
pub type LoginResult = (NodeId, Result<SessionId, DaemonError>);

pub struct Manager {
    /// Itself, for tasks it starts from `&self` methods.
    me: std::sync::Weak<Manager>,
    config: Config,
    /// Changed only by SetInitiatorName, while no session exists.
    initiator_name: std::sync::RwLock<String>,
    state_dir: PathBuf,
    store: NodeStore,
    state: Mutex<State>,
    changes: mpsc::UnboundedSender<Change>,
    /// The ublk block devices of disk LUNs (the `device` module).
    devices: crate::device::DeviceManager,
    /// How many changes were sent, so the adaptor can reply only once it mirrored them all.
    emitted: std::sync::atomic::AtomicU64,
    /// `<state-dir>/default-auth.toml`.
    defaults_path: PathBuf,
    /// Serialises SetDefaultAuth, so the file and memory agree on the last writer.
    defaults_write: tokio::sync::Mutex<()>,
}

impl Manager {
    /// Loads node records and returns the manager with the receiving end of its change feed.
    /// Damaged records are reported through `tracing` and skipped.
    pub async fn new(
        config: Config,
        state_dir: PathBuf,
        initiator_name: String,
    ) -> Result<(Arc<Manager>, mpsc::UnboundedReceiver<Change>), DaemonError> {
        let store = NodeStore::open(&state_dir).map_err(|e| DaemonError::Failed(e.to_string()))?;
        let s2 = store.clone();
        let (nodes, errors) = tokio::task::spawn_blocking(move || s2.load_all())
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?;
        for e in &errors {
            tracing::error!(path = %e.path.display(), "skipping node record: {}", e.message);
        }
        let defaults_path = state_dir.join(DEFAULT_AUTH_FILE);
        let p2 = defaults_path.clone();
        let stored = tokio::task::spawn_blocking(move || StoredDefaults::load(&p2))
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?
            .unwrap_or_else(|e| {
                // The config's defaults still work; the next SetDefaultAuth rewrites the file.
                tracing::error!(path = %defaults_path.display(), "ignoring stored default credentials: {e}");
                None
            })
            .unwrap_or_default();
        let mut state = State {
            session_auth: stored.session.clone().unwrap_or_else(|| config.auth.session.clone()),
            discovery_auth: stored.discovery.clone().unwrap_or_else(|| config.auth.discovery.clone()),
            stored_defaults: stored,
            ..State::default()
        };
        for node in nodes {
            let id = state.id();
            state.nodes.insert(
                id,
                NodeEntry {
                    node,
                    session: None,
                    login_lock: Arc::default(),
                },
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let devices = crate::device::DeviceManager::new(crate::device::DeviceConfig::from_config(&config.devices, &config.multipath));
        let m = Arc::new_cyclic(|me| Manager {
            me: me.clone(),
            config,
            initiator_name: std::sync::RwLock::new(initiator_name),
            state_dir: state_dir.clone(),
            store,
            state: Mutex::new(state),
            changes: tx,
            devices,
            emitted: std::sync::atomic::AtomicU64::new(0),
            defaults_path,
            defaults_write: tokio::sync::Mutex::new(()),
        });
        Ok((m, rx))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, c: Change) {
        self.emitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.changes.send(c);
    }

    /// How many changes have been announced so far (the adaptor waits until it has mirrored
    /// this many before replying, so a returned object path is always served).
    pub fn changes_emitted(&self) -> u64 {
        self.emitted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn initiator_name(&self) -> String {
        self.initiator_name.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Gives the initiator a new iSCSI name (kept in `<state-dir>/initiator-name`). Refused
    /// while any session exists: targets know the initiator by its name (ACLs, CHAP), and a
    /// session keeps the name it logged in with, so the change would apply to some sessions
    /// and not others. Refused when the config file sets the name: the file would win at the
    /// next start.
    pub async fn set_initiator_name(&self, name: &str) -> Result<(), DaemonError> {
        let name = crate::initiator_name::normalize_name(name)
            .map_err(|e| DaemonError::InvalidArgument(format!("invalid initiator name {name:?}: {e}")))?;
        if self.config.initiator.name.is_some() {
            return Err(DaemonError::NotSupported(
                "the initiator name is set in the config file ([initiator] name): change it there and restart lunlinkd"
                    .into(),
            ));
        }
        let _writer = self.defaults_write.lock().await;
        let n = self.lock().sessions.len();
        if n > 0 {
            return Err(DaemonError::InUse(format!(
                "{n} session(s) are logged in with the current name: log them out first (targets grant access \
                 by initiator name, so check their ACLs for the new one)"
            )));
        }
        let path = self.state_dir.join(crate::initiator_name::NAME_FILE);
        let contents = format!("{name}\n");
        tokio::task::spawn_blocking(move || crate::nodes::write_file_atomic(&path, contents.as_bytes(), 0o644, true))
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?
            .map_err(|e| DaemonError::Failed(format!("cannot save the initiator name: {e}")))?;
        let old = std::mem::replace(&mut *self.initiator_name.write().unwrap_or_else(|e| e.into_inner()), name.clone());
        tracing::info!(old = %old, new = %name, "initiator name changed");
        self.emit(Change::ManagerChanged);
        Ok(())
    }

    pub fn default_auth(&self) -> (config::Auth, config::Auth) {
        let st = self.lock();
        (st.session_auth.clone(), st.discovery_auth.clone())
    }

    /// Changes the default credentials of `scope` (`session` or `discovery`) and keeps them in
    /// the state directory, so they survive a restart. Nodes without credentials of their own
    /// follow the session defaults and are announced as changed.
    pub async fn set_default_auth(&self, scope: &str, s: &Settings) -> Result<(), DaemonError> {
        let session = match scope {
            "session" => true,
            "discovery" => false,
            other => {
                return Err(DaemonError::InvalidArgument(format!(
                    "unknown scope {other:?}: use session or discovery"
                )))
            }
        };
        let _writer = self.defaults_write.lock().await;
        let (auth, stored) = {
            let st = self.lock();
            let a = s.apply_auth(if session { &st.session_auth } else { &st.discovery_auth });
            let mut stored = st.stored_defaults.clone();
            *(if session { &mut stored.session } else { &mut stored.discovery }) = Some(a.clone());
            (a, stored)
        };
        engine_auth(&auth)?;
        auth.validate(scope).map_err(|e| {
            DaemonError::InvalidArgument(format!(
                "default {scope} credentials: {} {}",
                e.key.replace('_', "-").replacen(&format!("{scope}."), "", 1),
                e.message
            ))
        })?;
        let path = self.defaults_path.clone();
        let s2 = stored.clone();
        tokio::task::spawn_blocking(move || s2.save(&path))
            .await
            .map_err(|e| DaemonError::Failed(e.to_string()))?
            .map_err(|e| {
                DaemonError::Failed(format!(
                    "cannot save the default credentials in {}: {e}",
                    self.defaults_path.display()
                ))
            })?;
        let inheriting: Vec<NodeId> = {
            let mut st = self.lock();
            if session {
                st.session_auth = auth;
            } else {
                st.discovery_auth = auth;
            }
            st.stored_defaults = stored;
            if session {
                st.nodes.iter().filter(|(_, n)| n.node.auth.is_none()).map(|(id, _)| *id).collect()
            } else {
                Vec::new()
            }
        };
        tracing::info!(scope, "default credentials changed");
        for id in inheriting {
            self.emit(Change::NodeChanged(id));
        }
        Ok(())
    }

    // ---- views ----

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.lock().nodes.keys().copied().collect()
    }

    pub fn session_ids(&self) -> Vec<SessionId> {
        self.lock().sessions.keys().copied().collect()
    }

    pub fn lun_ids(&self) -> Vec<LunId> {
        self.lock().luns.keys().copied().collect()
    }

    pub fn lu_ids(&self) -> Vec<LuId> {
        self.lock().lus.keys().copied().collect()
    }

    pub fn node(&self, id: NodeId) -> Option<NodeView> {
        let st = self.lock();
        let e = st.nodes.get(&id)?;
        let auth = e.node.effective_auth(&st.session_auth);
        Some(NodeView {
            target: e.node.target.clone(),
            portal: e.node.portal.clone(),
            tpgt: e.node.tpgt,
            startup: e.node.startup,
            auth_method: auth.method,
            username: auth.username.clone().unwrap_or_default(),
            reverse_username: auth.reverse_username.clone().unwrap_or_default(),
            session: e.session,
            header_digest: e.node.negotiation.header_digest.iter().flatten().map(|d| d.as_str()).collect(),
            data_digest: e.node.negotiation.data_digest.iter().flatten().map(|d| d.as_str()).collect(),
            timeouts: e.node.timeouts.clone(),
            multipath_policy: e.node.multipath_policy.clone().unwrap_or_default(),
        })
    }

    /// Where the initiator name comes from: `config` (the file sets it) or `stored` (made
    /// once, or set with SetInitiatorName, and kept in the state directory).
    pub fn initiator_name_source(&self) -> &'static str {
        if self.config.initiator.name.is_some() {
            "config"
        } else {
            "stored"
        }
    }

    pub fn session(&self, id: SessionId) -> Option<SessionView> {
        let st = self.lock();
        let e = st.sessions.get(&id)?;
        let info = e.session.info();
        let stats = e.session.stats();
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        Some(SessionView {
            target: info.target_name.clone(),
            portal: info.portal.clone(),
            node: e.node,
            state: e.state,
            isid: info.isid.iter().map(|b| format!("{b:02x}")).collect(),
            tsih: info.tsih,
            params: info.params.clone(),
            luns: e.luns.clone(),
            commands: ld(&stats.commands),
            bytes_read: ld(&stats.bytes_read),
            bytes_written: ld(&stats.bytes_written),
            errors: ld(&stats.errors),
            retries: ld(&stats.retries),
            unit_attentions: ld(&stats.unit_attentions),
            timeouts: e.timeouts.clone(),
        })
    }

    pub fn lun(&self, id: LunId) -> Option<LunView> {
        let st = self.lock();
        let e = st.luns.get(&id)?;
        let (size, block_size) = e
            .info
            .capacity
            .map_or((0, 0), |c| (c.bytes(), c.block_size));
        let (target, portal) = st.sessions.get(&e.session).map_or_else(Default::default, |s| {
            let i = s.session.info();
            (i.target_name, i.portal)
        });
        let mp = st.lus.get(&e.lu).map(|l| l.mp.clone());
        let path_state = mp.as_ref().and_then(|m| m.path_state(id)).map_or("", |p| p.as_str()).to_owned();
        let path = mp.as_ref().and_then(|m| m.paths().into_iter().find(|p| p.id == id));
        let in_flight = path.as_ref().map_or(0, |p| p.in_flight());
        let access_state = path.as_ref().and_then(|p| p.access_state()).map_or("", |s| s.as_str());
        let target_port_group = path.as_ref().and_then(|p| p.target_port_group());
        Some(LunView {
            info: e.info.clone(),
            size,
            block_size,
            device: e.device.clone(),
            device_error: e.device_error.clone(),
            session: e.session,
            offline: e.offline,
            target,
            portal,
            lu: e.lu,
            path_state,
            in_flight,
            access_state,
            target_port_group,
        })
    }

    /// What holds block device `device` now (mounts, swap, LVM, MD), in words.
    pub async fn used_by(&self, device: &str) -> Vec<String> {
        self.devices.used_by(device).await
    }
}

/// Parses a portal argument ("host", "host:port", "[v6]:port"), default port 3260.
pub fn parse_portal(s: &str) -> Result<Portal, DaemonError> {
    // The strict rules of node records first: the engine's parser is lenient the way targets'
    // TargetAddress values need (an unbracketed IPv6 address means port 3260), which would
    // turn a person's "fe80::1:3260" into another host.
    let canonical = crate::nodes::normalize_portal(s)
        .map_err(|e| DaemonError::InvalidArgument(e.to_string()))?;
    canonical
        .parse::<Portal>()
        .map_err(|e| DaemonError::InvalidArgument(format!("invalid portal {s:?}: {e}")))
}

fn engine_digest(d: Digest) -> lunlink_proto::login::Digest {
    match d {
        Digest::None => lunlink_proto::login::Digest::None,
        Digest::Crc32c => lunlink_proto::login::Digest::Crc32c,
    }
}

fn engine_chap_alg(a: config::ChapAlgorithm) -> engine::ChapAlgorithm {
    match a {
        config::ChapAlgorithm::Md5 => engine::ChapAlgorithm::Md5,
        config::ChapAlgorithm::Sha1 => engine::ChapAlgorithm::Sha1,
        config::ChapAlgorithm::Sha256 => engine::ChapAlgorithm::Sha256,
        config::ChapAlgorithm::Sha3_256 => engine::ChapAlgorithm::Sha3_256,
    }
}

/// The engine's view of an authentication setting; incomplete CHAP settings are refused here
/// with a message naming what is missing.
pub fn engine_auth(a: &config::Auth) -> Result<engine::Auth, DaemonError> {
    match a.method {
        AuthMethod::None => Ok(engine::Auth::None),
        AuthMethod::Chap => {
            let username = a
                .username
                .clone()
                .ok_or_else(|| DaemonError::InvalidArgument("CHAP needs a username".into()))?;
            let secret = a
                .password
                .as_ref()
                .ok_or_else(|| DaemonError::InvalidArgument("CHAP needs a password".into()))?;
            let mutual = match (&a.reverse_username, &a.reverse_password) {
                (Some(u), Some(p)) => Some((
                    u.clone(),
                    engine::Secret::new(p.expose().as_bytes().to_vec()),
                )),
                (None, None) => None,
                _ => {
                    return Err(DaemonError::InvalidArgument(
                        "mutual CHAP needs both reverse-username and reverse-password".into(),
                    ))
                }
            };
            Ok(engine::Auth::Chap(engine::ChapConfig {
                username,
                secret: engine::Secret::new(secret.expose().as_bytes().to_vec()),
                mutual,
                algorithms: a
                    .chap_algorithms
                    .iter()
                    .map(|x| engine_chap_alg(*x))
                    .collect(),
            }))
        }
    }
}
