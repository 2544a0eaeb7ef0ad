//! The daemon's domain: nodes, sessions and logical units, and the operations on them.
//!
//! Nothing here knows about D-Bus: operations return what they did, and every state change is
//! announced as a [`Change`] on a channel that the D-Bus adaptor turns into InterfacesAdded /
//! PropertiesChanged / InterfacesRemoved. Blocking file I/O (node records) runs on tokio's
//! blocking pool; no lock is held across an await.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lunlink_engine::{self as engine, EngineError, Portal, Session, SessionConfig, SessionEvent};
use lunlink_proto::login::LoginError;
use tokio::sync::mpsc;

use crate::config::{self, AuthMethod, Config, Digest};
use crate::nodes::{Node, NodeKey, NodeStore, Startup, Upsert};

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
    /// Its target port group, when the LU has ALUA.
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
    /// The ublk block devices of disk LUNs (device.rs).
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
    fn join_lu(&self, st: &mut State, sid: SessionId, id: LunId, session: &Session, info: &engine::LunInfo) -> (LuId, bool) {
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
    fn watch_lu(&self, lu: LuId) {
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
    async fn remove_lun(&self, sid: SessionId, id: LunId, hold: bool) {
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
    fn leave_lus(&self, st: &mut State, luns: &[LunId]) -> Vec<Change> {
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
    fn drop_paths_later(&self, luns: Vec<(LunId, Arc<lunlink_multipath::LogicalUnit>)>) {
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
        let target_port_group = path.as_ref().filter(|p| p.has_alua()).and_then(|p| p.target_port_group());
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
    fn add_node(&self, node: Node) -> NodeId {
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

    fn apply_settings(&self, node: &mut Node, s: &Settings) -> Result<(), DaemonError> {
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

    async fn save(&self, node: Node) -> Result<(), DaemonError> {
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
    fn probe_limit(t: &config::Timeouts) -> Duration {
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

    /// Watches a session's events: failures change its state, LUN inventory changes rescan.
    fn spawn_monitor(self: &Arc<Self>, sid: SessionId, session: &Session) {
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
    fn hold_paths(&self, sid: SessionId, hold: bool) {
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
    async fn verify_identity(self: &Arc<Self>, sid: SessionId) {
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
            let now = match tokio::time::timeout(limit, session.inquiry_vpd(*n, 0x83)).await {
                Ok(Ok(b)) => lunlink_scsi::inquiry::parse_device_identification(&b)
                    .ok()
                    .and_then(|ids| lunlink_scsi::inquiry::best_wwid(&ids).map(|w| w.to_string())),
                _ => None,
            };
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
    fn link_changed(&self, sid: SessionId, link: engine::LinkState) {
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
    async fn login_nodes(self: &Arc<Self>, ids: Vec<NodeId>, s: &Settings) -> Vec<LoginResult> {
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

    fn remove_session(&self, sid: SessionId) {
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

    /// CAPACITY DATA HAS CHANGED on LUN `n`: reads the new capacity and shows it on the Lun
    /// object. The block device keeps the size it was made with (online resize of ublk devices
    /// is not implemented): the log says so, and a new login makes a device of the new size.
    async fn capacity_changed(&self, sid: SessionId, n: u16) {
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
