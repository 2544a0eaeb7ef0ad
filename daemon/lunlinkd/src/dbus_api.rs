//! The D-Bus adaptor (see dbus/API.md): thin objects that check arguments, call the
//! [`Manager`] and map its errors to named D-Bus errors. The manager's change feed is mirrored
//! here as InterfacesAdded / PropertiesChanged / InterfacesRemoved.
//!
//! A method replies only after every change it caused is mirrored ([`Ctx::settled`]): a client
//! that gets a session path back from Login can use it at once, and has seen InterfacesAdded
//! for it first. The introspection data is checked in as `dbus/org.lunlink.Initiator1.*.xml`
//! and a test compares it with what this module serves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lunlink_dbus::names::{BUS_NAME, ROOT_PATH};
use lunlink_dbus::options::{Call, Options, OptionsDict};
use lunlink_dbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use lunlink_dbus::Error;
use tokio::sync::{mpsc, watch};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{interface, Connection};

use crate::authz::{Action, Authorizer};

use crate::config;
use crate::manager::{bounded, Change, DaemonError, LuId, LunId, Manager, NodeId, SessionId, Settings, FILE_IO_LIMIT};
use crate::nodes::Startup;

fn map_err(e: DaemonError) -> Error {
    match e {
        DaemonError::InvalidArgument(m) => Error::InvalidArgument(m),
        DaemonError::NotFound(m) => Error::NotFound(m),
        DaemonError::InUse(m) => Error::InUse(m),
        DaemonError::AuthenticationFailed(m) => Error::AuthenticationFailed(m),
        DaemonError::TargetNotFound(m) => Error::TargetNotFound(m),
        DaemonError::ConnectionFailed(m) => Error::ConnectionFailed(m),
        DaemonError::Timeout(m) => Error::Timeout(m),
        DaemonError::LoginFailed(m) => Error::LoginFailed(m),
        DaemonError::Protocol(m) => Error::ProtocolError(m),
        DaemonError::NotSupported(m) => Error::NotSupported(m),
        DaemonError::Failed(m) => Error::Failed(m),
    }
}

pub fn node_path(id: NodeId) -> OwnedObjectPath {
    path(&format!("{ROOT_PATH}/node/{id}"))
}
pub fn session_path(id: SessionId) -> OwnedObjectPath {
    path(&format!("{ROOT_PATH}/session/{id}"))
}
pub fn lun_path(id: LunId) -> OwnedObjectPath {
    path(&format!("{ROOT_PATH}/lun/{id}"))
}
pub fn lu_path(id: LuId) -> OwnedObjectPath {
    path(&format!("{ROOT_PATH}/lu/{id}"))
}
fn path(s: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(s).expect("object paths built from numbers are valid")
}
fn no_path() -> OwnedObjectPath {
    path("/")
}

fn id_of(p: &OwnedObjectPath, kind: &str) -> Result<u64, Error> {
    p.as_str()
        .strip_prefix(&format!("{ROOT_PATH}/{kind}/"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a lunlink {kind} object", p.as_str())))
}

/// Logout within its bound (see `Manager::logout_bound`).
async fn bounded_logout(m: &Ctx, id: SessionId, force: bool) -> Result<(), DaemonError> {
    let m2 = m.m.clone();
    bounded(m.logout_bound(id), "logout", async move { m2.logout(id, force).await }).await
}

/// Converts a validated options dictionary into the manager's settings.
fn settings(dict: &OptionsDict, call: Call) -> Result<(Settings, Options), Error> {
    let o = Options::from_dict(dict, call)?;
    if o.auth_method.is_some_and(|m| m.as_str() == config::AuthMethod::None.as_str()) {
        let given = [
            ("username", o.username.is_some()),
            ("password", o.password.is_some()),
            ("reverse-username", o.reverse_username.is_some()),
            ("reverse-password", o.reverse_password.is_some()),
        ];
        if let Some((key, _)) = given.iter().find(|(_, set)| *set) {
            return Err(Error::InvalidArgument(format!(
                "option '{key}' contradicts auth-method 'none': leave it out, or use auth-method 'chap'"
            )));
        }
    }
    let s = Settings {
        auth_method: o.auth_method.and_then(|m| config::AuthMethod::from_name(m.as_str())),
        username: o.username.clone(),
        password: o.password.clone().map(config::Secret::new),
        reverse_username: o.reverse_username.clone(),
        reverse_password: o.reverse_password.clone().map(config::Secret::new),
        chap_algorithms: o
            .chap_algorithms
            .as_ref()
            .map(|v| v.iter().filter_map(|a| config::ChapAlgorithm::from_name(a.as_str())).collect()),
        startup: o.startup.and_then(|s| Startup::from_name(s.as_str())),
        header_digest: o.header_digest.as_ref().map(|v| v.iter().filter_map(|d| config::Digest::from_name(d.as_str())).collect()),
        data_digest: o.data_digest.as_ref().map(|v| v.iter().filter_map(|d| config::Digest::from_name(d.as_str())).collect()),
        replacement: o.replacement_timeout,
        noop_interval: o.noop_interval,
        noop_timeout: o.noop_timeout,
        multipath_policy: o.multipath_policy.clone(),
    };
    Ok((s, o))
}

/// A `u` value: the API fixes these parameters' D-Bus type whatever the engine's type is.
fn ov_u(v: u32) -> OwnedValue {
    ov(v)
}

fn ov<'a>(v: impl Into<Value<'a>>) -> OwnedValue {
    OwnedValue::try_from(v.into()).expect("basic values convert to owned values")
}

/// What every object of the adaptor shares: the manager, and how far its change feed has been
/// mirrored on the bus.
#[derive(Clone)]
struct Ctx {
    m: Arc<Manager>,
    mirrored: Arc<watch::Sender<u64>>,
    authz: Arc<Authorizer>,
}

/// Longest wait for the mirror before replying anyway (it only falls behind on a stuck bus).
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

impl Ctx {
    /// Waits until every change announced so far is on the bus.
    async fn settled(&self) {
        let target = self.m.changes_emitted();
        let mut rx = self.mirrored.subscribe();
        let wait = rx.wait_for(|done| *done >= target);
        if tokio::time::timeout(SETTLE_LIMIT, wait).await.is_err() {
            tracing::warn!("replying before the bus shows every change (mirror is behind)");
        }
    }

    /// polkit's answer for the caller of this call (see `authz`).
    async fn authorize(&self, conn: &Connection, hdr: &Header<'_>, action: Action, details: &[(&str, &str)]) -> Result<(), Error> {
        self.authz.check(conn, hdr, action, details).await
    }

    /// The manager's result, once its effects are visible on the bus.
    async fn reply<T>(&self, r: Result<T, DaemonError>) -> Result<T, Error> {
        self.settled().await;
        r.map_err(map_err)
    }
}

impl std::ops::Deref for Ctx {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.m
    }
}

pub struct ManagerIface {
    m: Ctx,
}

#[interface(name = "org.lunlink.Initiator1.Manager")]
impl ManagerIface {
    #[zbus(out_args("targets"))]
    async fn discover(
        &self,
        portal: &str,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, String, u16)>, Error> {
        self.m.authorize(conn, &hdr, Action::Discover, &[("portal", portal)]).await?;
        let (s, _) = settings(&options, Call::Discover)?;
        let (m, portal) = (self.m.m.clone(), portal.to_owned());
        let what = format!("discovery on {portal}");
        let r = bounded(self.m.discover_bound(), what, async move { m.discover(&portal, &s).await }).await;
        self.m.reply(r).await
    }

    #[zbus(out_args("session"))]
    async fn login(
        &self,
        target: &str,
        portal: &str,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<OwnedObjectPath, Error> {
        self.m.authorize(conn, &hdr, Action::Login, &[("target", target), ("portal", portal)]).await?;
        let (s, _) = settings(&options, Call::Login)?;
        let (m, target, portal) = (self.m.m.clone(), target.to_owned(), portal.to_owned());
        let what = format!("login to {target}");
        let r = bounded(self.m.login_bound(None), what, async move { m.login(&target, &portal, &s).await }).await;
        self.m.reply(r.map(session_path)).await
    }

    #[zbus(out_args("sessions"))]
    async fn login_all(
        &self,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        self.m.authorize(conn, &hdr, Action::Login, &[("target", "all nodes")]).await?;
        let (_, o) = settings(&options, Call::LoginAll)?;
        let (m, auto) = (self.m.m.clone(), o.automatic_only.unwrap_or(false));
        let bound = self.m.login_all_bound(self.m.node_ids().len());
        let r = bounded(bound, "LoginAll", async move { m.login_all(auto).await }).await;
        self.m.reply(r.map(|ids| ids.into_iter().map(session_path).collect())).await
    }

    /// LoginAll that says for every node what happened: (node, session or "/", error name or
    /// "", message or ""). Logins run in parallel.
    #[zbus(out_args("results"))]
    async fn login_all_with_results(
        &self,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(OwnedObjectPath, OwnedObjectPath, String, String)>, Error> {
        self.m.authorize(conn, &hdr, Action::Login, &[("target", "all nodes")]).await?;
        let (_, o) = settings(&options, Call::LoginAll)?;
        let (m, auto) = (self.m.m.clone(), o.automatic_only.unwrap_or(false));
        let bound = self.m.login_all_bound(self.m.node_ids().len());
        let r = bounded(bound, "LoginAll", async move { Ok(m.login_each(auto).await) }).await;
        let rows = r.map(|rows| {
            rows.into_iter()
                .map(|(node, r)| match r {
                    Ok(sid) => (node_path(node), session_path(sid), String::new(), String::new()),
                    Err(e) => {
                        let e = map_err(e);
                        let name = zbus::DBusError::name(&e).to_string();
                        let msg = zbus::DBusError::description(&e).unwrap_or_default().to_owned();
                        (node_path(node), no_path(), name, msg)
                    }
                })
                .collect()
        });
        self.m.reply(rows).await
    }

    async fn logout(
        &self,
        session: OwnedObjectPath,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let (_, o) = settings(&options, Call::Logout)?;
        let id = id_of(&session, "session")?;
        let (target, portal) = self.m.session(id).map(|v| (v.target, v.portal)).unwrap_or_default();
        self.m.authorize(conn, &hdr, Action::Logout, &[("target", &target), ("portal", &portal)]).await?;
        self.m.reply(bounded_logout(&self.m, id, o.force.unwrap_or(false)).await).await
    }

    #[zbus(out_args("node"))]
    async fn create_node(
        &self,
        target: &str,
        portal: &str,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<OwnedObjectPath, Error> {
        self.m.authorize(conn, &hdr, Action::ManageNodes, &[("target", target), ("portal", portal)]).await?;
        let (s, _) = settings(&options, Call::CreateNode)?;
        let (m, target, portal) = (self.m.m.clone(), target.to_owned(), portal.to_owned());
        let r = bounded(FILE_IO_LIMIT, "CreateNode", async move { m.create_node(&target, &portal, &s).await }).await;
        self.m.reply(r.map(node_path)).await
    }

    async fn set_default_auth(
        &self,
        scope: &str,
        options: OptionsDict,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.m.authorize(conn, &hdr, Action::ManageAuth, &[]).await?;
        let (s, _) = settings(&options, Call::SetDefaultAuth)?;
        let (m, scope) = (self.m.m.clone(), scope.to_owned());
        let r = bounded(FILE_IO_LIMIT, "SetDefaultAuth", async move { m.set_default_auth(&scope, &s).await }).await;
        self.m.reply(r).await?;
        // Never the secrets: only the method and the user name are properties.
        let r = async {
            self.default_auth_method_changed(&emitter).await?;
            self.default_username_changed(&emitter).await?;
            self.discovery_auth_method_changed(&emitter).await?;
            self.default_reverse_username_changed(&emitter).await?;
            self.discovery_reverse_username_changed(&emitter).await?;
            self.discovery_username_changed(&emitter).await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!("cannot announce the new default credentials: {e}");
        }
        Ok(())
    }

    /// Sets the initiator's iSCSI name (see Manager::set_initiator_name): refused with InUse
    /// while sessions exist, NotSupported when the config file sets it.
    async fn set_initiator_name(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.m.authorize(conn, &hdr, Action::ManageAuth, &[("name", name)]).await?;
        let (m, name) = (self.m.m.clone(), name.to_owned());
        self.m.reply(bounded(FILE_IO_LIMIT, "SetInitiatorName", async move { m.set_initiator_name(&name).await }).await).await
    }

    /// From the config file, else generated once and kept; SetInitiatorName changes it.
    #[zbus(property)]
    fn initiator_name(&self) -> String {
        self.m.initiator_name()
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }
    #[zbus(property)]
    fn default_auth_method(&self) -> String {
        self.m.default_auth().0.method.as_str().to_owned()
    }
    #[zbus(property)]
    fn default_username(&self) -> String {
        self.m.default_auth().0.username.unwrap_or_default()
    }
    #[zbus(property)]
    fn discovery_auth_method(&self) -> String {
        self.m.default_auth().1.method.as_str().to_owned()
    }
    #[zbus(property)]
    fn discovery_username(&self) -> String {
        self.m.default_auth().1.username.unwrap_or_default()
    }
    /// Mutual CHAP of the session defaults: the name the target must send ("" without).
    #[zbus(property)]
    fn default_reverse_username(&self) -> String {
        self.m.default_auth().0.reverse_username.unwrap_or_default()
    }
    /// Mutual CHAP of the discovery defaults ("" without).
    #[zbus(property)]
    fn discovery_reverse_username(&self) -> String {
        self.m.default_auth().1.reverse_username.unwrap_or_default()
    }
    /// `config` (the config file sets the name: SetInitiatorName is refused) or `stored`.
    #[zbus(property(emits_changed_signal = "const"))]
    fn initiator_name_source(&self) -> String {
        self.m.initiator_name_source().to_owned()
    }
}

pub struct NodeIface {
    m: Ctx,
    id: NodeId,
}

impl NodeIface {
    fn view(&self) -> Result<crate::manager::NodeView, zbus::fdo::Error> {
        self.m.node(self.id).ok_or_else(|| zbus::fdo::Error::UnknownObject("node is gone".into()))
    }
}

#[interface(name = "org.lunlink.Initiator1.Node")]
impl NodeIface {
    #[zbus(out_args("session"))]
    async fn login(
        &self,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<OwnedObjectPath, Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::Login, &[("target", &v.target), ("portal", &v.portal)]).await?;
        let (s, _) = settings(&options, Call::Login)?;
        let (m, id) = (self.m.m.clone(), self.id);
        let r = bounded(self.m.login_bound(Some(id)), "login", async move { m.login_node(id, &s).await }).await;
        self.m.reply(r.map(session_path)).await
    }
    /// Returns when the change takes effect: `now` or `next-login`.
    #[zbus(out_args("takes_effect"))]
    async fn update(
        &self,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::ManageNodes, &[("target", &v.target), ("portal", &v.portal)]).await?;
        let (s, _) = settings(&options, Call::NodeUpdate)?;
        let (m, id) = (self.m.m.clone(), self.id);
        let r = bounded(FILE_IO_LIMIT, "Update", async move { m.update_node(id, &s).await }).await;
        self.m.reply(r.map(str::to_owned)).await
    }
    async fn delete(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::ManageNodes, &[("target", &v.target), ("portal", &v.portal)]).await?;
        let (m, id) = (self.m.m.clone(), self.id);
        self.m.reply(bounded(FILE_IO_LIMIT, "Delete", async move { m.delete_node(id).await }).await).await
    }
    /// Target, portal and tag identify the node: they never change.
    #[zbus(property(emits_changed_signal = "const"))]
    fn target(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.target)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn portal(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.portal)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn tpgt(&self) -> zbus::fdo::Result<u16> {
        Ok(self.view()?.tpgt)
    }
    #[zbus(property)]
    fn startup(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.startup.as_str().to_owned())
    }
    #[zbus(property)]
    fn auth_method(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.auth_method.as_str().to_owned())
    }
    #[zbus(property)]
    fn username(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.username)
    }
    #[zbus(property)]
    fn reverse_username(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.reverse_username)
    }
    #[zbus(property)]
    fn session(&self) -> zbus::fdo::Result<OwnedObjectPath> {
        Ok(self.view()?.session.map_or_else(no_path, session_path))
    }
    /// The path policy of the logical units this node is the first to reach ("": the
    /// config's `[multipath] policy`).
    #[zbus(property)]
    fn multipath_policy(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.multipath_policy)
    }
    /// The node's own HeaderDigest offer, most preferred first; empty: the config's.
    #[zbus(property)]
    fn header_digest(&self) -> zbus::fdo::Result<Vec<String>> {
        Ok(self.view()?.header_digest.into_iter().map(str::to_owned).collect())
    }
    /// The node's own DataDigest offer; empty: the config's.
    #[zbus(property)]
    fn data_digest(&self) -> zbus::fdo::Result<Vec<String>> {
        Ok(self.view()?.data_digest.into_iter().map(str::to_owned).collect())
    }
    /// The node's own timeouts in seconds (Login, Logout, NoopInterval, NoopTimeout, Command u;
    /// Replacement i, -1 for ever); a missing key means the config's value.
    #[zbus(property)]
    fn timeouts(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        let t = self.view()?.timeouts;
        let mut m = HashMap::new();
        let mut put_u = |k: &str, v: Option<u32>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), ov(v));
            }
        };
        put_u("Login", t.login);
        put_u("Logout", t.logout);
        put_u("NoopInterval", t.noop_interval);
        put_u("NoopTimeout", t.noop_timeout);
        put_u("Command", t.command);
        if let Some(r) = t.replacement {
            m.insert("Replacement".into(), ov(r));
        }
        Ok(m)
    }
}

pub struct SessionIface {
    m: Ctx,
    id: SessionId,
}

impl SessionIface {
    fn view(&self) -> Result<crate::manager::SessionView, zbus::fdo::Error> {
        self.m.session(self.id).ok_or_else(|| zbus::fdo::Error::UnknownObject("session is gone".into()))
    }
}

#[interface(name = "org.lunlink.Initiator1.Session")]
impl SessionIface {
    async fn logout(
        &self,
        options: OptionsDict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::Logout, &[("target", &v.target), ("portal", &v.portal)]).await?;
        let (_, o) = settings(&options, Call::Logout)?;
        self.m.reply(bounded_logout(&self.m, self.id, o.force.unwrap_or(false)).await).await
    }
    async fn rescan(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::Login, &[("target", &v.target), ("portal", &v.portal)]).await?;
        let (m, id) = (self.m.m.clone(), self.id);
        self.m.reply(bounded(self.m.rescan_bound(id), "Rescan", async move { m.rescan(id).await }).await).await
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn target(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.target)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn portal(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.portal)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn node(&self) -> zbus::fdo::Result<OwnedObjectPath> {
        Ok(node_path(self.view()?.node))
    }
    #[zbus(property)]
    fn state(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.state.as_str().to_owned())
    }
    /// Kept across reconnects (session reinstatement, RFC 7143 §6.3.5), so it never changes.
    #[zbus(property(emits_changed_signal = "const"))]
    fn isid(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.isid)
    }
    #[zbus(property)]
    fn tsih(&self) -> zbus::fdo::Result<u16> {
        Ok(self.view()?.tsih)
    }
    /// The timeouts in effect for this session, in seconds (config file and node overrides as
    /// of its login): Login, Logout, NoopInterval, NoopTimeout, Command (u) and Replacement (i:
    /// -1 means queue forever).
    #[zbus(property(emits_changed_signal = "const"))]
    fn timeouts(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        let t = self.view()?.timeouts;
        let mut m = HashMap::new();
        m.insert("Login".into(), ov(t.login));
        m.insert("Logout".into(), ov(t.logout));
        m.insert("NoopInterval".into(), ov(t.noop_interval));
        m.insert("NoopTimeout".into(), ov(t.noop_timeout));
        m.insert("Command".into(), ov(t.command));
        m.insert("Replacement".into(), ov(t.replacement));
        Ok(m)
    }

    /// Negotiated values by their RFC 7143 key names.
    #[zbus(property)]
    fn parameters(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        let p = self.view()?.params;
        let digest = |on: bool| if on { "CRC32C" } else { "None" };
        let mut m = HashMap::new();
        m.insert("HeaderDigest".into(), ov(digest(p.header_digest)));
        m.insert("DataDigest".into(), ov(digest(p.data_digest)));
        m.insert("MaxRecvDataSegmentLength".into(), ov(p.max_recv_data_segment_length));
        m.insert("TargetMaxRecvDataSegmentLength".into(), ov(p.max_xmit_data_segment_length));
        m.insert("MaxBurstLength".into(), ov(p.max_burst_length));
        m.insert("FirstBurstLength".into(), ov(p.first_burst_length));
        m.insert("InitialR2T".into(), ov(p.initial_r2t));
        m.insert("ImmediateData".into(), ov(p.immediate_data));
        m.insert("MaxOutstandingR2T".into(), ov_u(p.max_outstanding_r2t));
        m.insert("DefaultTime2Wait".into(), ov_u(p.default_time2wait));
        m.insert("DefaultTime2Retain".into(), ov_u(p.default_time2retain));
        m.insert("DataPDUInOrder".into(), ov(p.data_pdu_in_order));
        m.insert("DataSequenceInOrder".into(), ov(p.data_sequence_in_order));
        m.insert("ErrorRecoveryLevel".into(), ov_u(u32::from(p.error_recovery_level)));
        m.insert("MaxConnections".into(), ov_u(p.max_connections));
        Ok(m)
    }
    #[zbus(property)]
    fn luns(&self) -> zbus::fdo::Result<Vec<OwnedObjectPath>> {
        Ok(self.view()?.luns.into_iter().map(lun_path).collect())
    }
    /// Counters move with every command; a signal each time would flood the bus, so they are
    /// read on demand (EmitsChangedSignal=false tells proxies not to cache them).
    #[zbus(property(emits_changed_signal = "false"))]
    fn commands(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.commands)
    }
    #[zbus(property(emits_changed_signal = "false"))]
    fn bytes_read(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.bytes_read)
    }
    #[zbus(property(emits_changed_signal = "false"))]
    fn bytes_written(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.bytes_written)
    }
    /// Commands that failed to their caller, after retries (unit attentions and retried
    /// statuses are not errors: see Retries, UnitAttentions).
    #[zbus(property(emits_changed_signal = "false"))]
    fn errors(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.errors)
    }
    /// Commands sent again after a retryable SCSI status (UNIT ATTENTION, BUSY, TASK SET
    /// FULL, becoming ready, ...).
    #[zbus(property(emits_changed_signal = "false"))]
    fn retries(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.retries)
    }
    /// UNIT ATTENTION conditions the target reported (news such as a reset or a changed LUN
    /// inventory, not failures).
    #[zbus(property(emits_changed_signal = "false"))]
    fn unit_attentions(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.unit_attentions)
    }
}

/// The /dev/disk/by-path name of a LUN's or LU's device; empty while there is no device.
fn by_path(device: &str, target: &str, portal: &str, lun: u16) -> String {
    if device.is_empty() { String::new() } else { crate::device::by_path(target, portal, lun) }
}

/// The /dev/disk/by-id names of a device; none while there is no device.
fn by_id(device: &str, wwid: &str) -> Vec<String> {
    if device.is_empty() { Vec::new() } else { crate::device::by_id(wwid) }
}

pub struct LunIface {
    m: Ctx,
    id: LunId,
}

impl LunIface {
    fn view(&self) -> Result<crate::manager::LunView, zbus::fdo::Error> {
        self.m.lun(self.id).ok_or_else(|| zbus::fdo::Error::UnknownObject("LUN is gone".into()))
    }
}

#[interface(name = "org.lunlink.Initiator1.Lun")]
impl LunIface {
    #[zbus(property(emits_changed_signal = "const"))]
    fn lun(&self) -> zbus::fdo::Result<u16> {
        Ok(self.view()?.info.lun)
    }
    #[zbus(property)]
    fn vendor(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.vendor)
    }
    #[zbus(property)]
    fn product(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.product)
    }
    #[zbus(property)]
    fn revision(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.revision)
    }
    #[zbus(property)]
    fn serial(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.serial)
    }
    #[zbus(property)]
    fn wwid(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.wwid)
    }
    #[zbus(property)]
    fn size(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.size)
    }
    #[zbus(property)]
    fn block_size(&self) -> zbus::fdo::Result<u32> {
        Ok(self.view()?.block_size)
    }
    #[zbus(property)]
    fn read_only(&self) -> zbus::fdo::Result<bool> {
        Ok(self.view()?.info.read_only)
    }
    #[zbus(property)]
    fn device(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.device)
    }
    #[zbus(property)]
    fn device_error(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.device_error)
    }
    /// The LUN vanished from the target while its device was in use: the device stays
    /// (its IO fails) until the LUN is back or the device is no longer used.
    #[zbus(property)]
    fn offline(&self) -> zbus::fdo::Result<bool> {
        Ok(self.view()?.offline)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn session(&self) -> zbus::fdo::Result<OwnedObjectPath> {
        Ok(session_path(self.view()?.session))
    }
    /// The target this LUN belongs to (its session's).
    #[zbus(property(emits_changed_signal = "const"))]
    fn target(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.target)
    }
    /// The stable /dev/disk/by-path name of the block device (open-iscsi's form), empty
    /// while there is no device.
    #[zbus(property)]
    fn by_path(&self) -> zbus::fdo::Result<String> {
        let v = self.view()?;
        Ok(by_path(&v.device, &v.target, &v.portal, v.info.lun))
    }
    /// This LUN as a path of its logical unit: `active` (carries IO), `standby` (usable, the
    /// policy sends IO elsewhere), `failed` (down, or failed a command and not yet answering
    /// the path checker), `held-out` (failed too often lately).
    #[zbus(property)]
    fn path_state(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.path_state)
    }
    /// The ALUA access state of this path's target port group (`active/optimized`,
    /// `active/non-optimized`, `standby`, `unavailable`, `lba-dependent`, `offline`,
    /// `transitioning`); empty when the LU has no ALUA or the state is not read yet.
    #[zbus(property)]
    fn access_state(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.access_state.to_owned())
    }
    /// The ALUA target port group this path goes through (VPD 0x83, read again at every
    /// relogin), -1 when the LU names none.
    #[zbus(property)]
    fn target_port_group(&self) -> zbus::fdo::Result<i32> {
        Ok(self.view()?.target_port_group.map_or(-1, i32::from))
    }
    /// Commands of the logical unit in flight on this path; read on demand.
    #[zbus(property(emits_changed_signal = "false"))]
    fn in_flight(&self) -> zbus::fdo::Result<u32> {
        Ok(self.view()?.in_flight)
    }
    /// The logical unit this LUN is a path to.
    #[zbus(property(emits_changed_signal = "const"))]
    fn logical_unit(&self) -> zbus::fdo::Result<OwnedObjectPath> {
        Ok(lu_path(self.view()?.lu))
    }
    /// What holds the block device now, in words ("/dev/ublkb0p1 is mounted on /srv", "... is in
    /// LVM volume group vg0 (dm-0, vg0-data)", "... is in RAID md0", "... is in use as swap").
    /// Read on demand: the kernel does not tell lunlinkd when this changes.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn used_by(&self) -> zbus::fdo::Result<Vec<String>> {
        let v = self.view()?;
        Ok(self.m.used_by(&v.device).await)
    }
    /// The stable /dev/disk/by-id names of the block device (from the LU's VPD 0x83
    /// identifier), empty while there is no device or the LU has no identifier.
    #[zbus(property)]
    fn by_id(&self) -> zbus::fdo::Result<Vec<String>> {
        let v = self.view()?;
        Ok(by_id(&v.device, &v.info.wwid))
    }
}

pub struct LogicalUnitIface {
    m: Ctx,
    id: LuId,
}

impl LogicalUnitIface {
    fn view(&self) -> Result<crate::manager::LuView, zbus::fdo::Error> {
        self.m.lu(self.id).ok_or_else(|| zbus::fdo::Error::UnknownObject("logical unit is gone".into()))
    }
}

/// One logical unit with all its paths (the Lun objects of every session that reaches it).
#[interface(name = "org.lunlink.Initiator1.LogicalUnit")]
impl LogicalUnitIface {
    /// How IO is spread over the paths: `failover`, `round-robin` or `queue-depth`.
    async fn set_policy(
        &self,
        policy: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::ManageNodes, &[("target", &v.target), ("portal", &v.portal)]).await?;
        self.m.set_lu_policy(self.id, policy).map_err(map_err)?;
        let _ = self.policy_changed(&emitter).await;
        Ok(())
    }
    /// Fails at once every IO that waits for a usable path (the way out of a dead array);
    /// returns how many were waiting.
    #[zbus(out_args("failed"))]
    async fn fail_queued_io(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, Error> {
        let v = self.view()?;
        self.m.authorize(conn, &hdr, Action::Logout, &[("target", &v.target), ("portal", &v.portal)]).await?;
        self.m.fail_queued(self.id).map_err(map_err)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn wwid(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.wwid)
    }
    #[zbus(property)]
    fn vendor(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.vendor)
    }
    #[zbus(property)]
    fn product(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.info.product)
    }
    #[zbus(property)]
    fn size(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.size)
    }
    #[zbus(property)]
    fn block_size(&self) -> zbus::fdo::Result<u32> {
        Ok(self.view()?.block_size)
    }
    #[zbus(property)]
    fn device(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.device)
    }
    #[zbus(property)]
    fn by_path(&self) -> zbus::fdo::Result<String> {
        let v = self.view()?;
        Ok(by_path(&v.device, &v.target, &v.portal, v.info.lun))
    }
    #[zbus(property)]
    fn by_id(&self) -> zbus::fdo::Result<Vec<String>> {
        let v = self.view()?;
        Ok(by_id(&v.device, &v.info.wwid))
    }
    /// The paths: the Lun objects of every session that reaches this LU.
    #[zbus(property)]
    fn paths(&self) -> zbus::fdo::Result<Vec<OwnedObjectPath>> {
        Ok(self.view()?.paths.into_iter().map(lun_path).collect())
    }
    #[zbus(property)]
    fn policy(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.policy.to_owned())
    }
    /// `optimal` (every path usable), `degraded` (some), `queueing` (IO waits for a path that
    /// answers), `failed` (no usable path).
    #[zbus(property)]
    fn state(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.state.to_owned())
    }
    /// IO waiting for a usable path.
    #[zbus(property)]
    fn queued_io(&self) -> zbus::fdo::Result<u32> {
        Ok(self.view()?.queued)
    }
}

/// Connects to the bus, serves the root objects and the existing nodes, then takes the name
/// (objects first, so that no early call finds them missing).
pub async fn serve(m: Arc<Manager>, bus: &lunlink_dbus::BusChoice) -> Result<Connection, Error> {
    let ctx = Ctx { m, mirrored: Arc::new(watch::Sender::new(0)), authz: Arc::default() };
    let conn = bus
        .builder()?
        .serve_at(ROOT_PATH, zbus::fdo::ObjectManager)
        .map_err(Error::ZBus)?
        .serve_at(ROOT_PATH, ManagerIface { m: ctx.clone() })
        .map_err(Error::ZBus)?
        .build()
        .await
        .map_err(Error::ZBus)?;
    for id in ctx.node_ids() {
        conn.object_server().at(node_path(id), NodeIface { m: ctx.clone(), id }).await.map_err(Error::ZBus)?;
    }
    conn.request_name(BUS_NAME).await.map_err(Error::ZBus)?;
    Ok(conn)
}

/// Mirrors the manager's changes on the bus until the feed ends.
pub async fn mirror_changes(m: Arc<Manager>, conn: Connection, mut rx: mpsc::UnboundedReceiver<Change>) {
    let srv = conn.object_server();
    // The context `serve` made, so that methods waiting for this mirror see its progress.
    let m = match srv.interface::<_, ManagerIface>(ROOT_PATH).await {
        Ok(r) => r.get().await.m.clone(),
        Err(e) => {
            tracing::error!("the Manager object is not served ({e}); replies will not wait for signals");
            Ctx { m, mirrored: Arc::new(watch::Sender::new(u64::MAX)), authz: Arc::default() }
        }
    };
    while let Some(c) = rx.recv().await {
        let r: zbus::Result<()> = async {
            match c {
                Change::LuAdded(id) => {
                    srv.at(lu_path(id), LogicalUnitIface { m: m.clone(), id }).await?;
                }
                Change::LuRemoved(id) => {
                    srv.remove::<LogicalUnitIface, _>(lu_path(id)).await?;
                }
                Change::LuChanged(id) => {
                    if let Ok(r) = srv.interface::<_, LogicalUnitIface>(lu_path(id)).await {
                        let e = r.signal_emitter();
                        let i = r.get().await;
                        i.state_changed(e).await?;
                        i.paths_changed(e).await?;
                        i.queued_io_changed(e).await?;
                        i.policy_changed(e).await?;
                        i.device_changed(e).await?;
                    }
                }
                Change::ManagerChanged => {
                    if let Ok(r) = srv.interface::<_, ManagerIface>(ROOT_PATH).await {
                        r.get().await.initiator_name_changed(r.signal_emitter()).await?;
                    }
                }
                Change::NodeAdded(id) => {
                    srv.at(node_path(id), NodeIface { m: m.clone(), id }).await?;
                }
                Change::NodeRemoved(id) => {
                    srv.remove::<NodeIface, _>(node_path(id)).await?;
                }
                Change::NodeChanged(id) => {
                    if let Ok(r) = srv.interface::<_, NodeIface>(node_path(id)).await {
                        let e = r.signal_emitter();
                        let i = r.get().await;
                        i.session_changed(e).await?;
                        i.startup_changed(e).await?;
                        i.auth_method_changed(e).await?;
                        i.username_changed(e).await?;
                        i.reverse_username_changed(e).await?;
                        i.header_digest_changed(e).await?;
                        i.data_digest_changed(e).await?;
                        i.timeouts_changed(e).await?;
                        i.multipath_policy_changed(e).await?;
                    }
                }
                Change::SessionAdded(id) => {
                    srv.at(session_path(id), SessionIface { m: m.clone(), id }).await?;
                }
                Change::SessionRemoved(id) => {
                    srv.remove::<SessionIface, _>(session_path(id)).await?;
                }
                Change::SessionChanged(id) => {
                    if let Ok(r) = srv.interface::<_, SessionIface>(session_path(id)).await {
                        let e: &SignalEmitter<'_> = r.signal_emitter();
                        let i = r.get().await;
                        i.state_changed(e).await?;
                        i.luns_changed(e).await?;
                        i.tsih_changed(e).await?;
                        i.parameters_changed(e).await?;
                    }
                }
                Change::LunAdded(id) => {
                    srv.at(lun_path(id), LunIface { m: m.clone(), id }).await?;
                }
                Change::LunRemoved(id) => {
                    srv.remove::<LunIface, _>(lun_path(id)).await?;
                }
                Change::LunChanged(id) => {
                    if let Ok(r) = srv.interface::<_, LunIface>(lun_path(id)).await {
                        let e = r.signal_emitter();
                        let i = r.get().await;
                        i.device_changed(e).await?;
                        i.by_path_changed(e).await?;
                        i.by_id_changed(e).await?;
                        i.device_error_changed(e).await?;
                        i.offline_changed(e).await?;
                        i.size_changed(e).await?;
                        i.path_state_changed(e).await?;
                        i.access_state_changed(e).await?;
                        i.target_port_group_changed(e).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            tracing::warn!("cannot mirror {c:?} on the bus: {e}");
        }
        m.mirrored.send_modify(|done| *done = done.saturating_add(1));
    }
}
