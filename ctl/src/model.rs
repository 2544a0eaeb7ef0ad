//! A typed snapshot of lunlinkd's objects from one `GetManagedObjects` call, and the lookups
//! that turn a TARGET or SESSION argument into an object path.

use std::collections::{BTreeMap, HashMap};

use lunlink_dbus::zvariant::{OwnedValue, Value};
use lunlink_dbus::{
    ManagedObjects, LOGICAL_UNIT_INTERFACE, LUN_INTERFACE, NODE_INTERFACE, NO_OBJECT_PATH, SESSION_INTERFACE,
};
use serde::Serialize;

use crate::exit::CtlError;

/// Default iSCSI port (RFC 7143 §13.9 / IANA), added to a portal given without one.
const ISCSI_PORT: u16 = 3260;

/// A node as listed by `nodes` and `node show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub path: String,
    pub target: String,
    pub portal: String,
    pub tpgt: u16,
    pub startup: String,
    pub auth_method: String,
    pub username: String,
    pub reverse_username: String,
    /// The session object, `None` when not logged in.
    pub session: Option<String>,
}

/// A session as listed by `sessions` and `session show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub path: String,
    pub target: String,
    pub portal: String,
    pub node: Option<String>,
    pub state: String,
    pub isid: String,
    pub tsih: u16,
    /// Negotiated parameters by RFC 7143 key name.
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub luns: Vec<String>,
    pub commands: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Commands that failed to their caller, after retries.
    pub errors: u64,
    /// Commands sent again after a retryable SCSI status.
    pub retries: u64,
    pub unit_attentions: u64,
}

/// A LUN as listed by `luns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LunInfo {
    pub path: String,
    pub lun: u16,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    pub serial: String,
    pub wwid: String,
    pub size: u64,
    pub block_size: u32,
    pub read_only: bool,
    pub device: String,
    pub device_error: String,
    /// Vanished from the target while its device is in use.
    pub offline: bool,
    pub session: Option<String>,
    /// The target of the LUN's session.
    pub target: String,
    /// The stable /dev/disk/by-path name of the device; empty without a device.
    pub by_path: String,
    /// The /dev/disk/by-id names of the device.
    pub by_id: Vec<String>,
    /// As a path of its logical unit: active, standby, failed, held-out.
    pub path_state: String,
    pub in_flight: u32,
    pub logical_unit: Option<String>,
    /// The ALUA access state of the path's target port group; empty without ALUA.
    pub access_state: String,
    /// Its ALUA target port group; None without ALUA.
    pub target_port_group: Option<u16>,
}

/// A path of a logical unit, as `lus --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LuPath {
    /// The Lun object.
    pub path: String,
    pub target: String,
    pub portal: String,
    pub lun: u16,
    pub state: String,
    pub in_flight: u32,
    /// ALUA access state of the path's target port group (`active/optimized`, `standby`, ...);
    /// empty when the LU has no ALUA.
    pub access_state: String,
    /// ALUA target port group; null without ALUA.
    pub target_port_group: Option<u16>,
}

/// A logical unit with its paths, as `lus` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalUnitInfo {
    pub path: String,
    pub wwid: String,
    pub vendor: String,
    pub product: String,
    pub size: u64,
    pub device: String,
    pub policy: String,
    /// optimal, degraded, queueing, failed.
    pub state: String,
    pub queued_io: u32,
    pub paths: Vec<LuPath>,
}

/// Every node, session and LUN, sorted for stable output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<NodeInfo>,
    pub sessions: Vec<SessionInfo>,
    pub luns: Vec<LunInfo>,
    pub lus: Vec<LogicalUnitInfo>,
}

type Props = HashMap<String, OwnedValue>;

/// Missing or mistyped properties read as empty: a newer or older daemon must not make the
/// whole listing fail.
fn s(p: &Props, key: &str) -> String {
    p.get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_owned()
}

fn num<T: TryFrom<Value<'static>> + Default>(p: &Props, key: &str) -> T {
    p.get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| T::try_from(v.into()).ok())
        .unwrap_or_default()
}

fn path(p: &Props, key: &str) -> Option<String> {
    let v = p.get(key)?;
    let o = <&lunlink_dbus::zvariant::ObjectPath<'_>>::try_from(v).ok()?;
    (o.as_str() != NO_OBJECT_PATH).then(|| o.to_string())
}

fn strings(p: &Props, key: &str) -> Vec<String> {
    match p.get(key).map(|v| &**v) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn paths(p: &Props, key: &str) -> Vec<String> {
    match p.get(key).map(|v| &**v) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::ObjectPath(o) => Some(o.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A D-Bus value as JSON: numbers, strings, booleans and lists as such, anything else in its
/// text form.
pub fn to_json(v: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Bool(b) => J::from(*b),
        Value::U8(n) => J::from(*n),
        Value::U16(n) => J::from(*n),
        Value::U32(n) => J::from(*n),
        Value::U64(n) => J::from(*n),
        Value::I16(n) => J::from(*n),
        Value::I32(n) => J::from(*n),
        Value::I64(n) => J::from(*n),
        Value::F64(n) => J::from(*n),
        Value::Str(s) => J::from(s.as_str()),
        Value::ObjectPath(o) => J::from(o.as_str()),
        Value::Value(inner) => to_json(inner),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        other => J::from(other.to_string()),
    }
}

/// A parameter value for text output: strings bare, the rest as JSON would show it.
pub fn param_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parameters(p: &Props) -> BTreeMap<String, serde_json::Value> {
    match p.get("Parameters").map(|v| &**v) {
        Some(Value::Dict(d)) => d
            .iter()
            .filter_map(|(k, v)| match k {
                Value::Str(k) => Some((k.as_str().to_owned(), to_json(v))),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

impl Snapshot {
    /// Build from a `GetManagedObjects` reply; objects of unknown interfaces are ignored.
    pub fn from_objects(objects: &ManagedObjects) -> Self {
        let mut snap = Snapshot::default();
        let mut lu_paths: HashMap<String, Vec<String>> = HashMap::new();
        for (obj, ifaces) in objects {
            let obj = obj.to_string();
            if let Some(p) = ifaces.get(NODE_INTERFACE) {
                snap.nodes.push(NodeInfo {
                    path: obj.clone(),
                    target: s(p, "Target"),
                    portal: s(p, "Portal"),
                    tpgt: num(p, "Tpgt"),
                    startup: s(p, "Startup"),
                    auth_method: s(p, "AuthMethod"),
                    username: s(p, "Username"),
                    reverse_username: s(p, "ReverseUsername"),
                    session: path(p, "Session"),
                });
            }
            if let Some(p) = ifaces.get(SESSION_INTERFACE) {
                snap.sessions.push(SessionInfo {
                    path: obj.clone(),
                    target: s(p, "Target"),
                    portal: s(p, "Portal"),
                    node: path(p, "Node"),
                    state: s(p, "State"),
                    isid: s(p, "Isid"),
                    tsih: num(p, "Tsih"),
                    parameters: parameters(p),
                    luns: paths(p, "Luns"),
                    commands: num(p, "Commands"),
                    bytes_read: num(p, "BytesRead"),
                    bytes_written: num(p, "BytesWritten"),
                    errors: num(p, "Errors"),
                    retries: num(p, "Retries"),
                    unit_attentions: num(p, "UnitAttentions"),
                });
            }
            if let Some(p) = ifaces.get(LUN_INTERFACE) {
                snap.luns.push(LunInfo {
                    path: obj.clone(),
                    lun: num(p, "Lun"),
                    vendor: s(p, "Vendor"),
                    product: s(p, "Product"),
                    revision: s(p, "Revision"),
                    serial: s(p, "Serial"),
                    wwid: s(p, "Wwid"),
                    size: num(p, "Size"),
                    block_size: num(p, "BlockSize"),
                    read_only: num(p, "ReadOnly"),
                    device: s(p, "Device"),
                    device_error: s(p, "DeviceError"),
                    offline: num(p, "Offline"),
                    session: path(p, "Session"),
                    target: s(p, "Target"),
                    by_path: s(p, "ByPath"),
                    by_id: strings(p, "ById"),
                    path_state: s(p, "PathState"),
                    in_flight: num(p, "InFlight"),
                    logical_unit: path(p, "LogicalUnit"),
                    access_state: s(p, "AccessState"),
                    target_port_group: u16::try_from(num::<i32>(p, "TargetPortGroup")).ok().filter(|_| p.contains_key("TargetPortGroup")),
                });
            }
            if let Some(p) = ifaces.get(LOGICAL_UNIT_INTERFACE) {
                lu_paths.insert(obj.clone(), paths(p, "Paths"));
                snap.lus.push(LogicalUnitInfo {
                    path: obj.clone(),
                    wwid: s(p, "Wwid"),
                    vendor: s(p, "Vendor"),
                    product: s(p, "Product"),
                    size: num(p, "Size"),
                    device: s(p, "Device"),
                    policy: s(p, "Policy"),
                    state: s(p, "State"),
                    queued_io: num(p, "QueuedIo"),
                    paths: Vec::new(),
                });
            }
        }
        snap.nodes
            .sort_by(|a, b| (&a.target, &a.portal, &a.path).cmp(&(&b.target, &b.portal, &b.path)));
        snap.sessions
            .sort_by(|a, b| (&a.target, &a.portal, &a.path).cmp(&(&b.target, &b.portal, &b.path)));
        let order: HashMap<&str, usize> = snap
            .sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (s.path.as_str(), i))
            .collect();
        let rank = |l: &LunInfo| l.session.as_deref().and_then(|s| order.get(s).copied());
        let mut luns = std::mem::take(&mut snap.luns);
        for l in &mut luns {
            if l.target.is_empty() {
                if let Some(s) = l.session.as_deref().and_then(|p| snap.sessions.iter().find(|s| s.path == p)) {
                    l.target = s.target.clone();
                }
            }
        }
        luns.sort_by(|a, b| (rank(a), a.lun, &a.path).cmp(&(rank(b), b.lun, &b.path)));
        snap.luns = luns;
        for lu in &mut snap.lus {
            for p in lu_paths.get(&lu.path).into_iter().flatten() {
                let Some(l) = snap.luns.iter().find(|l| &l.path == p) else { continue };
                let portal = l.session.as_deref().and_then(|s| snap.sessions.iter().find(|x| x.path == s)).map(|s| s.portal.clone()).unwrap_or_default();
                lu.paths.push(LuPath {
                    path: p.clone(),
                    target: l.target.clone(),
                    portal,
                    lun: l.lun,
                    state: l.path_state.clone(),
                    in_flight: l.in_flight,
                    access_state: l.access_state.clone(),
                    target_port_group: l.target_port_group,
                });
            }
        }
        snap.lus.sort_by(|a, b| (&a.wwid, &a.path).cmp(&(&b.wwid, &b.path)));
        snap
    }

    /// The session at `path`, if listed.
    pub fn session_at(&self, path: &str) -> Option<&SessionInfo> {
        self.sessions.iter().find(|s| s.path == path)
    }

    /// The LUN at `path`, if listed.
    pub fn lun_at(&self, path: &str) -> Option<&LunInfo> {
        self.luns.iter().find(|l| l.path == path)
    }

    /// The node for `target` (and `portal`, when given).
    ///
    /// A target reached through several portals needs `--portal`; the error lists them.
    pub fn find_node(&self, target: &str, portal: Option<&str>) -> Result<&NodeInfo, CtlError> {
        let found: Vec<&NodeInfo> = self
            .nodes
            .iter()
            .filter(|n| n.target == target && portal_matches(portal, &n.portal))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(CtlError::NotFound(match portal {
                Some(p) if self.nodes.iter().any(|n| n.target == target) => {
                    format!("no node for target {target} at portal {p}")
                }
                _ => format!("no node for target {target} (see 'lunlinkctl nodes')"),
            })),
            several => Err(CtlError::Ambiguous(format!(
                "target {target} has several portals: {}; choose one with --portal",
                several
                    .iter()
                    .map(|n| n.portal.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The session named by `arg`: an object path, the last element of one (as `sessions`
    /// shows), or a target name (with `portal` when it has several sessions).
    pub fn find_session(&self, arg: &str, portal: Option<&str>) -> Result<&SessionInfo, CtlError> {
        if arg.starts_with('/') {
            return self
                .session_at(arg)
                .ok_or_else(|| CtlError::NotFound(format!("no session {arg}")));
        }
        if let Some(s) = self.sessions.iter().find(|s| short_id(&s.path) == arg) {
            return Ok(s);
        }
        let found: Vec<&SessionInfo> = self
            .sessions
            .iter()
            .filter(|s| s.target == arg && portal_matches(portal, &s.portal))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(CtlError::NotFound(match portal {
                Some(p) => format!("no session to target {arg} at portal {p}"),
                None => format!("no session to target {arg} (see 'lunlinkctl sessions')"),
            })),
            several => {
                Err(CtlError::Ambiguous(format!(
                "target {arg} has several sessions, through portals {}; choose one with --portal",
                several.iter().map(|s| s.portal.as_str()).collect::<Vec<_>>().join(", ")
            )))
            }
        }
    }
}

/// The last element of an object path: the short id that `sessions` shows.
pub fn short_id(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether an object at portal `have` matches the `--portal` given, if any.
fn portal_matches(given: Option<&str>, have: &str) -> bool {
    match given {
        None => true,
        Some(p) => same_portal(have, p),
    }
}

/// Whether two portals name the same address, treating a missing port as 3260 and accepting
/// a bare IPv6 address without brackets.
pub fn same_portal(a: &str, b: &str) -> bool {
    normalize_portal(a).eq_ignore_ascii_case(&normalize_portal(b))
}

/// "host[:port]" with the default port made explicit, IPv6 in brackets (RFC 7143 §13.8 form
/// of TargetAddress without the tag).
pub fn normalize_portal(p: &str) -> String {
    let p = p.trim();
    if let Some(rest) = p.strip_prefix('[') {
        // [v6] or [v6]:port
        return match rest.split_once(']') {
            Some((host, "")) => format!("[{host}]:{ISCSI_PORT}"),
            Some((host, port)) => format!("[{host}]{port}"),
            None => p.to_owned(),
        };
    }
    match p.matches(':').count() {
        0 => format!("{p}:{ISCSI_PORT}"),
        1 => p.to_owned(),
        // A bare IPv6 address cannot carry a port.
        _ => format!("[{p}]:{ISCSI_PORT}"),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use lunlink_dbus::zvariant::{OwnedObjectPath, Str};

    fn sv(v: &str) -> OwnedValue {
        OwnedValue::from(Str::from(v.to_owned()))
    }

    fn op(v: &str) -> OwnedValue {
        OwnedValue::from(OwnedObjectPath::try_from(v).expect("path").into_inner())
    }

    fn opath(v: &str) -> OwnedObjectPath {
        OwnedObjectPath::try_from(v).expect("path")
    }

    fn node(target: &str, portal: &str, session: &str) -> HashMap<String, Props> {
        let p: Props = HashMap::from([
            ("Target".into(), sv(target)),
            ("Portal".into(), sv(portal)),
            ("Tpgt".into(), OwnedValue::from(1u16)),
            ("Startup".into(), sv("manual")),
            ("AuthMethod".into(), sv("none")),
            ("Username".into(), sv("")),
            ("ReverseUsername".into(), sv("")),
            ("Session".into(), op(session)),
        ]);
        HashMap::from([(NODE_INTERFACE.to_owned(), p)])
    }

    fn session(target: &str, portal: &str, luns: &[&str]) -> HashMap<String, Props> {
        let lun_paths: Vec<lunlink_dbus::zvariant::ObjectPath<'static>> =
            luns.iter().map(|l| opath(l).into_inner()).collect();
        let params = HashMap::from([
            ("MaxBurstLength".to_owned(), Value::U32(262_144)),
            ("HeaderDigest".to_owned(), Value::from("CRC32C")),
        ]);
        let p: Props = HashMap::from([
            ("Target".into(), sv(target)),
            ("Portal".into(), sv(portal)),
            ("State".into(), sv("logged-in")),
            ("Tsih".into(), OwnedValue::from(7u16)),
            ("BytesRead".into(), OwnedValue::from(4096u64)),
            (
                "Luns".into(),
                Value::from(lun_paths).try_to_owned().expect("array"),
            ),
            (
                "Parameters".into(),
                Value::from(params).try_to_owned().expect("dict"),
            ),
        ]);
        HashMap::from([(SESSION_INTERFACE.to_owned(), p)])
    }

    fn lun(n: u16, session: &str, size: u64) -> HashMap<String, Props> {
        let p: Props = HashMap::from([
            ("Lun".into(), OwnedValue::from(n)),
            ("Vendor".into(), sv("LIO-ORG")),
            ("Product".into(), sv("disk")),
            ("Wwid".into(), sv("naa.6001405")),
            ("Size".into(), OwnedValue::from(size)),
            ("Device".into(), sv("/dev/ublkb0")),
            ("Session".into(), op(session)),
        ]);
        HashMap::from([(LUN_INTERFACE.to_owned(), p)])
    }

    pub const A: &str = "iqn.2026-01.org.example:a";
    pub const B: &str = "iqn.2026-01.org.example:b";

    /// Two targets; B has two portals, one logged in.
    pub fn sample() -> Snapshot {
        let objects: ManagedObjects = HashMap::from([
            (
                opath("/org/lunlink/Initiator1/node/1"),
                node(A, "192.0.2.1:3260", "/"),
            ),
            (
                opath("/org/lunlink/Initiator1/node/2"),
                node(B, "192.0.2.2:3260", "/org/lunlink/Initiator1/session/5"),
            ),
            (
                opath("/org/lunlink/Initiator1/node/3"),
                node(B, "[2001:db8::2]:3260", "/"),
            ),
            (
                opath("/org/lunlink/Initiator1/session/5"),
                session(B, "192.0.2.2:3260", &["/org/lunlink/Initiator1/lun/9"]),
            ),
            (
                opath("/org/lunlink/Initiator1/lun/9"),
                lun(0, "/org/lunlink/Initiator1/session/5", 10 << 30),
            ),
        ]);
        Snapshot::from_objects(&objects)
    }

    #[test]
    fn reads_properties_and_sorts() {
        let s = sample();
        let targets: Vec<(&str, &str)> = s
            .nodes
            .iter()
            .map(|n| (n.target.as_str(), n.portal.as_str()))
            .collect();
        assert_eq!(
            targets,
            vec![
                (A, "192.0.2.1:3260"),
                (B, "192.0.2.2:3260"),
                (B, "[2001:db8::2]:3260")
            ]
        );
        assert_eq!(s.nodes[0].session, None, "\"/\" means no session");
        assert_eq!(
            s.nodes[1].session.as_deref(),
            Some("/org/lunlink/Initiator1/session/5")
        );
        assert_eq!(s.nodes[0].tpgt, 1);
        let sess = &s.sessions[0];
        assert_eq!(sess.tsih, 7);
        assert_eq!(sess.bytes_read, 4096);
        assert_eq!(sess.commands, 0, "missing property reads as 0");
        assert_eq!(sess.luns, vec!["/org/lunlink/Initiator1/lun/9".to_owned()]);
        assert_eq!(
            sess.parameters["MaxBurstLength"],
            serde_json::json!(262_144)
        );
        assert_eq!(sess.parameters["HeaderDigest"], serde_json::json!("CRC32C"));
        assert_eq!(s.luns[0].size, 10 << 30);
        assert!(!s.luns[0].read_only);
    }

    #[test]
    fn finds_nodes_and_explains_ambiguity() {
        let s = sample();
        assert_eq!(
            s.find_node(A, None).map(|n| n.path.as_str()).ok(),
            Some("/org/lunlink/Initiator1/node/1")
        );
        let e = s.find_node(B, None).unwrap_err();
        assert!(matches!(e, CtlError::Ambiguous(_)));
        assert_eq!(
            e.to_string(),
            "target iqn.2026-01.org.example:b has several portals: 192.0.2.2:3260, \
             [2001:db8::2]:3260; choose one with --portal"
        );
        assert_eq!(
            s.find_node(B, Some("2001:db8::2"))
                .map(|n| n.path.as_str())
                .ok(),
            Some("/org/lunlink/Initiator1/node/3")
        );
        assert_eq!(
            s.find_node(B, Some("192.0.2.2"))
                .map(|n| n.path.as_str())
                .ok(),
            Some("/org/lunlink/Initiator1/node/2")
        );
        assert!(matches!(
            s.find_node("iqn.x", None),
            Err(CtlError::NotFound(_))
        ));
        let e = s.find_node(A, Some("192.0.2.9")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no node for target {A} at portal 192.0.2.9")
        );
    }

    #[test]
    fn finds_sessions_by_path_id_or_target() {
        let s = sample();
        let p = "/org/lunlink/Initiator1/session/5";
        assert_eq!(
            s.find_session(p, None).map(|x| x.path.as_str()).ok(),
            Some(p)
        );
        assert_eq!(
            s.find_session("5", None).map(|x| x.path.as_str()).ok(),
            Some(p)
        );
        assert_eq!(
            s.find_session(B, None).map(|x| x.path.as_str()).ok(),
            Some(p)
        );
        assert!(matches!(
            s.find_session(A, None),
            Err(CtlError::NotFound(_))
        ));
        assert!(matches!(
            s.find_session("/org/lunlink/Initiator1/session/6", None),
            Err(CtlError::NotFound(_))
        ));
        assert!(matches!(
            s.find_session(B, Some("[2001:db8::2]")),
            Err(CtlError::NotFound(_))
        ));
    }

    #[test]
    fn portals_compare_with_default_port() {
        assert_eq!(normalize_portal("192.0.2.1"), "192.0.2.1:3260");
        assert_eq!(normalize_portal("192.0.2.1:3261"), "192.0.2.1:3261");
        assert_eq!(normalize_portal("[::1]"), "[::1]:3260");
        assert_eq!(normalize_portal("[::1]:860"), "[::1]:860");
        assert_eq!(normalize_portal("fe80::1"), "[fe80::1]:3260");
        assert_eq!(normalize_portal("san.example"), "san.example:3260");
        assert!(same_portal("SAN.example", "san.example:3260"));
        assert!(!same_portal("192.0.2.1", "192.0.2.1:3261"));
    }

    #[test]
    fn json_of_values() {
        assert_eq!(to_json(&Value::from(true)), serde_json::json!(true));
        assert_eq!(to_json(&Value::U64(1 << 40)), serde_json::json!(1u64 << 40));
        let a = Value::from(vec!["crc32c", "none"]);
        assert_eq!(to_json(&a), serde_json::json!(["crc32c", "none"]));
        assert_eq!(param_text(&serde_json::json!("None")), "None");
        assert_eq!(param_text(&serde_json::json!(8192)), "8192");
    }
}
