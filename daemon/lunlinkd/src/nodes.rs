//! Node records: one TOML file per (target, portal, tpgt) in `<state-dir>/nodes/`.
//!
//! A node is what discovery (RFC 7143 §13.3 SendTargets) or an admin told us about: a target
//! name, a portal it answers on and the portal group tag (§13.9), plus our settings for
//! logging in there. Records hold CHAP secrets, so files are 0600 and directories 0700, and
//! every write is atomic (temp file, fsync, rename, fsync directory): a crash leaves the old
//! record or the new one, never half of one.
//!
//! Blocking std I/O only: the daemon calls these from `spawn_blocking`.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::{
    parse_toml, Auth, InvalidSetting, Negotiation, NegotiationOverrides, TimeoutOverrides, Timeouts,
};
use crate::initiator_name::{validate_name, NameError};

/// The iSCSI port registered with IANA (RFC 7143 §13.8: TargetAddress without a port).
pub const DEFAULT_PORT: u16 = 3260;

/// Subdirectory of the state directory that holds node records.
pub const NODES_DIR: &str = "nodes";

/// Errors from node records and the node store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("target name {target:?} is not valid: {source}")]
    InvalidTarget {
        target: String,
        #[source]
        source: NameError,
    },
    #[error("portal {portal:?} is not valid: {reason}")]
    InvalidPortal { portal: String, reason: String },
    #[error("node setting {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("node record {} is damaged: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
}

impl From<InvalidSetting> for NodeError {
    fn from(e: InvalidSetting) -> Self {
        NodeError::Invalid {
            key: e.key,
            message: e.message,
        }
    }
}

/// Whether `LoginAll` with `automatic-only` (and the boot-time login) picks the node up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    #[default]
    Manual,
    Automatic,
}

impl Startup {
    pub fn as_str(self) -> &'static str {
        match self {
            Startup::Manual => "manual",
            Startup::Automatic => "automatic",
        }
    }

    /// Parses the D-Bus / file spelling (`manual`, `automatic`).
    pub fn from_name(name: &str) -> Option<Startup> {
        match name {
            "manual" => Some(Startup::Manual),
            "automatic" => Some(Startup::Automatic),
            _ => None,
        }
    }
}

/// What identifies a node: target name, portal (`host:port`, IPv6 in brackets) and target
/// portal group tag. Build it with [`NodeKey::new`], which validates and normalises.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    pub target: String,
    pub portal: String,
    pub tpgt: u16,
}

impl NodeKey {
    /// Validates the target name and normalises the portal (default port 3260, lowercase host
    /// name, canonical IPv6 text in brackets).
    pub fn new(target: &str, portal: &str, tpgt: u16) -> Result<NodeKey, NodeError> {
        check_target(target)?;
        Ok(NodeKey {
            target: target.to_string(),
            portal: normalize_portal(portal)?,
            tpgt,
        })
    }

    /// The record's file name: `<target>,<host>,<port>,<tpgt>.toml` with every byte outside
    /// `[A-Za-z0-9.-]` written as `%XX` (so IQN and IPv6 colons, brackets and `/` never reach the
    /// file system). Names too long for a file system get a hash in place of their tail.
    pub fn file_name(&self) -> String {
        let (host, port) = match self.portal.rsplit_once(':') {
            Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
            None => (self.portal.as_str(), ""),
        };
        let name = format!(
            "{},{},{},{}",
            escape(&self.target),
            escape(host),
            escape(port),
            self.tpgt
        );
        if name.len() + ".toml".len() <= MAX_FILE_NAME {
            return format!("{name}.toml");
        }
        let digest = Sha256::digest(name.as_bytes());
        let mut hash = String::with_capacity(16);
        for b in &digest[..8] {
            hash.push_str(&format!("{b:02x}"));
        }
        // `escape` output is ASCII, so any byte index is a char boundary.
        format!("{}~{hash}.toml", &name[..MAX_FILE_NAME - 32])
    }
}

/// Leaves room below the usual 255-byte limit for the temporary name used while writing.
const MAX_FILE_NAME: usize = 200;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        // A leading '.' would make a hidden file (or "." / "..").
        if b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Target names come from targets (SendTargets) and are kept byte for byte, since some
/// targets compare them that way; uppercase ASCII is tolerated for that reason only. Otherwise
/// the RFC 7143 §4.2.7 rules apply.
fn check_target(target: &str) -> Result<(), NodeError> {
    validate_name(&target.to_ascii_lowercase())
        .map(|_| ())
        .map_err(|source| NodeError::InvalidTarget {
            target: target.to_string(),
            source,
        })
}

/// Splits a portal `host[:port]` into host (IPv6 without brackets, host names lowercased) and
/// port (3260 when absent). IPv6 addresses must be in brackets (RFC 7143 §13.8, as in URIs),
/// since `fe80::1:3260` cannot be split otherwise.
pub fn parse_portal(portal: &str) -> Result<(String, u16), NodeError> {
    let bad = |reason: &str| NodeError::InvalidPortal {
        portal: portal.to_string(),
        reason: reason.to_string(),
    };
    if portal.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Some(rest) = portal.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("'[' without a closing ']'"))?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| {
            bad("the part in brackets is not an IPv6 address (zone indexes such as %eth0 are not supported)")
        })?;
        let port = match after {
            "" => DEFAULT_PORT,
            _ => parse_port(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("expected ':' and a port after ']'"))?,
            )
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match portal.split_once(':') {
        None => (portal, DEFAULT_PORT),
        Some((_, port)) if port.contains(':') => {
            return Err(bad(
                "an IPv6 address must be written in brackets, e.g. [fe80::1]:3260",
            ))
        }
        Some((host, port)) => (
            host,
            parse_port(port).ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        ),
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok((ip.to_string(), port));
    }
    check_host_name(host).map_err(bad)?;
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(s: &str) -> Option<u16> {
    // u16::from_str would also take "+3260".
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p != 0)
}

/// RFC 1123 host names: labels of letters, digits and '-', 1 to 63 bytes, 253 in all.
fn check_host_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host.len() > 253 {
        return Err("the host name is longer than 253 bytes");
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("the host name has an empty label or one longer than 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("the host must be an IPv4 address, a host name (letters, digits, '-', '.') or an IPv6 address in brackets");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a host name label may not start or end with '-'");
        }
    }
    if host
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("it looks like an IPv4 address but is not a valid one");
    }
    Ok(())
}

/// The canonical `host:port` form (IPv6 as `[addr]:port`), used in records and on D-Bus.
pub fn normalize_portal(portal: &str) -> Result<String, NodeError> {
    let (host, port) = parse_portal(portal)?;
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// One node record. Settings left out fall back to the daemon-wide config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// TargetName (RFC 7143 §13.4).
    pub target: String,
    /// `host:port`, IPv6 in brackets.
    pub portal: String,
    /// TargetPortalGroupTag (RFC 7143 §13.9).
    pub tpgt: u16,
    #[serde(default)]
    pub startup: Startup,
    /// The node's own credentials; `None` uses `[auth.session]` from the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    #[serde(default, skip_serializing_if = "NegotiationOverrides::is_empty")]
    pub negotiation: NegotiationOverrides,
    #[serde(default, skip_serializing_if = "TimeoutOverrides::is_empty")]
    pub timeouts: TimeoutOverrides,
    /// The path policy of the logical units this node reaches (`failover`, `round-robin`,
    /// `queue-depth`); `None` uses `[multipath] policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_policy: Option<String>,
}

impl Node {
    /// A node with default settings (manual startup, config-wide auth and parameters).
    pub fn new(key: NodeKey) -> Node {
        Node {
            target: key.target,
            portal: key.portal,
            tpgt: key.tpgt,
            startup: Startup::default(),
            auth: None,
            negotiation: NegotiationOverrides::default(),
            timeouts: TimeoutOverrides::default(),
            multipath_policy: None,
        }
    }

    pub fn key(&self) -> NodeKey {
        NodeKey {
            target: self.target.clone(),
            portal: self.portal.clone(),
            tpgt: self.tpgt,
        }
    }

    /// The credentials to log in with: the node's own, else the config's session defaults.
    pub fn effective_auth<'a>(&'a self, defaults: &'a Auth) -> &'a Auth {
        self.auth.as_ref().unwrap_or(defaults)
    }

    pub fn effective_negotiation(&self, defaults: &Negotiation) -> Negotiation {
        defaults.with_overrides(&self.negotiation)
    }

    pub fn effective_timeouts(&self, defaults: &Timeouts) -> Timeouts {
        defaults.with_overrides(&self.timeouts)
    }

    /// Checks every field; the portal must already be in canonical form.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.validate_fields().map_err(|e| match e {
            Refused::Node(e) => e,
            Refused::Setting(e) => e.into(),
        })
    }

    fn validate_fields(&self) -> Result<(), Refused> {
        check_target(&self.target)?;
        let canonical = normalize_portal(&self.portal)?;
        if canonical != self.portal {
            return Err(Refused::Setting(InvalidSetting::new(
                "portal",
                format!("must be written as {canonical:?}"),
            )));
        }
        if let Some(auth) = &self.auth {
            auth.validate("auth")?;
        }
        self.negotiation.validate("negotiation")?;
        self.timeouts.validate("timeouts")?;
        if let Some(p) = &self.multipath_policy {
            if lunlink_multipath::Policy::from_name(p).is_none() {
                return Err(Refused::Setting(InvalidSetting::new(
                    "multipath_policy",
                    format!("{p:?} is not a policy: use failover, round-robin or queue-depth"),
                )));
            }
        }
        Ok(())
    }
}

/// Validation failures, keeping setting errors apart so their line can be found in a file.
enum Refused {
    Node(NodeError),
    Setting(InvalidSetting),
}

impl From<NodeError> for Refused {
    fn from(e: NodeError) -> Self {
        Refused::Node(e)
    }
}

impl From<InvalidSetting> for Refused {
    fn from(e: InvalidSetting) -> Self {
        Refused::Setting(e)
    }
}

/// A record that could not be loaded; the others still are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

/// Result of [`NodeStore::upsert_discovered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upsert {
    /// The node was new and has been written with default settings.
    Created(Node),
    /// A record existed; it is returned unchanged.
    Existing(Node),
}

impl Upsert {
    pub fn node(&self) -> &Node {
        match self {
            Upsert::Created(n) | Upsert::Existing(n) => n,
        }
    }
}

/// The node records under `<state-dir>/nodes/`.
#[derive(Debug, Clone)]
pub struct NodeStore {
    dir: PathBuf,
}

const FILE_HEADER: &str =
    "# lunlink node record, written by lunlinkd. Change it with lunlinkctl,\n\
                           # or edit it while lunlinkd is stopped.\n";

impl NodeStore {
    /// Opens (creating if needed) `<state_dir>/nodes`, forcing both directories to 0700 since
    /// records hold CHAP secrets. Leftover temporary files of a crashed daemon are removed.
    pub fn open(state_dir: &Path) -> Result<NodeStore, NodeError> {
        let dir = state_dir.join(NODES_DIR);
        for d in [state_dir, dir.as_path()] {
            ensure_private_dir(d).map_err(|source| NodeError::Io {
                action: "create",
                path: d.to_path_buf(),
                source,
            })?;
        }
        let store = NodeStore { dir };
        store.remove_stale_temp_files();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the record for `key` (whether or not it exists).
    pub fn path_of(&self, key: &NodeKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// Every record, sorted by key. A record that cannot be read, parsed or validated, or whose
    /// file name does not match its content, is reported in the second list and skipped.
    pub fn load_all(&self) -> (Vec<Node>, Vec<LoadError>) {
        let mut nodes = Vec::new();
        let mut errors = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(LoadError {
                    path: self.dir.clone(),
                    message: format!("cannot list node records: {e}"),
                });
                return (nodes, errors);
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    errors.push(LoadError {
                        path: self.dir.clone(),
                        message: format!("cannot list node records: {e}"),
                    });
                    continue;
                }
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Temporary files start with '.'; anything else not ours is left alone.
            if name.starts_with('.') || !name.ends_with(".toml") {
                continue;
            }
            let path = entry.path();
            match read_record(&path) {
                Ok(node) if node.key().file_name() == name => nodes.push(node),
                Ok(node) => errors.push(LoadError {
                    path,
                    message: format!(
                        "the file name does not match the record inside (expected {}); rename or remove it",
                        node.key().file_name()
                    ),
                }),
                Err(message) => errors.push(LoadError { path, message }),
            }
        }
        nodes.sort_by_key(Node::key);
        errors.sort_by(|a, b| a.path.cmp(&b.path));
        (nodes, errors)
    }

    /// The record for `key`, `None` if there is none.
    pub fn load(&self, key: &NodeKey) -> Result<Option<Node>, NodeError> {
        let path = self.path_of(&NodeKey::new(&key.target, &key.portal, key.tpgt)?);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(NodeError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
            Ok(_) => {}
        }
        read_record(&path)
            .map(Some)
            .map_err(|message| NodeError::Corrupt { path, message })
    }

    /// Writes `node`, replacing any record with the same key. The node must be valid (see
    /// [`Node::validate`]).
    pub fn save(&self, node: &Node) -> Result<(), NodeError> {
        node.validate()?;
        let path = self.path_of(&node.key());
        write_file_atomic(&path, &render(node)?, 0o600, true).map_err(|source| NodeError::Io {
            action: "write",
            path,
            source,
        })?;
        Ok(())
    }

    /// Removes the record for `key`; `false` if there was none.
    pub fn delete(&self, key: &NodeKey) -> Result<bool, NodeError> {
        let path = self.path_of(&NodeKey::new(&key.target, &key.portal, key.tpgt)?);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(NodeError::Io {
                    action: "remove",
                    path,
                    source,
                })
            }
        }
        sync_dir(&self.dir).map_err(|source| NodeError::Io {
            action: "sync",
            path: self.dir.clone(),
            source,
        })?;
        Ok(true)
    }

    /// Records a node found by discovery. An existing record is never touched, so
    /// rediscovery keeps an admin's settings; a new one gets `startup` and defaults. Safe
    /// against a concurrent writer: the record is created with a no-replace link.
    pub fn upsert_discovered(
        &self,
        target: &str,
        portal: &str,
        tpgt: u16,
        startup: Startup,
    ) -> Result<Upsert, NodeError> {
        let key = NodeKey::new(target, portal, tpgt)?;
        let path = self.path_of(&key);
        let node = Node {
            startup,
            ..Node::new(key)
        };
        let written =
            write_file_atomic(&path, &render(&node)?, 0o600, false).map_err(|source| {
                NodeError::Io {
                    action: "write",
                    path: path.clone(),
                    source,
                }
            })?;
        match written {
            Written::Written => Ok(Upsert::Created(node)),
            Written::AlreadyExists => read_record(&path)
                .map(Upsert::Existing)
                .map_err(|message| NodeError::Corrupt { path, message }),
        }
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let own_pid = std::process::id().to_string();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // `.<name>.tmp.<pid>.<n>`: lunlinkd runs once per host (it owns a bus name), so a
            // temp file of another pid is a leftover; one of ours may be in use right now.
            let Some(rest) = name.strip_prefix('.') else {
                continue;
            };
            let mut tail = rest.rsplitn(3, '.');
            let (Some(_n), Some(pid), Some(head)) = (tail.next(), tail.next(), tail.next()) else {
                continue;
            };
            if head.ends_with(".tmp") && pid != own_pid {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The text of a node record as the store writes it.
pub fn render(node: &Node) -> Result<Vec<u8>, NodeError> {
    let body = toml::to_string(node).map_err(|e| NodeError::Invalid {
        key: "node".into(),
        message: format!("cannot be written as TOML: {e}"),
    })?;
    Ok(format!("{FILE_HEADER}{body}").into_bytes())
}

/// Reads, parses and validates one record; the error text names line and key where it can.
fn read_record(path: &Path) -> Result<Node, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse_record(&text)
}

/// Parses and validates the text of one record (what [`NodeStore::load`] does with a file);
/// the error text names line and key where it can.
pub fn parse_record(text: &str) -> Result<Node, String> {
    let mut node: Node = parse_toml(text).map_err(|p| p.to_string())?;
    // Hand-written records may leave the port out; store and compare the canonical form.
    node.portal = normalize_portal(&node.portal)
        .map_err(|e| locate_setting(text, InvalidSetting::new("portal", e.to_string())))?;
    node.validate_fields().map_err(|e| match e {
        Refused::Node(NodeError::InvalidTarget { source, .. }) => {
            locate_setting(text, InvalidSetting::new("target", source.to_string()))
        }
        Refused::Node(e) => e.to_string(),
        Refused::Setting(e) => locate_setting(text, e),
    })?;
    Ok(node)
}

fn locate_setting(text: &str, e: InvalidSetting) -> String {
    e.locate(text).to_string()
}

/// Outcome of [`write_file_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Written,
    /// `replace` was false and the file already existed; nothing was changed.
    AlreadyExists,
}

/// Writes `contents` to `path` atomically with permissions `mode`: a temporary file in the same
/// directory is written and fsynced, then renamed over `path` (`replace`) or hard-linked to it
/// (create only: linking fails if `path` exists, even if another process created it a moment
/// ago), and the directory is fsynced so the new name survives a crash.
pub(crate) fn write_file_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    replace: bool,
) -> io::Result<Written> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits away; the mode asked for is the mode wanted.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        if replace {
            fs::rename(&tmp, path)?;
            Ok(Written::Written)
        } else {
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(Written::Written),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Written::AlreadyExists),
                Err(e) => Err(e),
            }
        }
    })();
    if !(replace && result.is_ok()) {
        let _ = fs::remove_file(&tmp);
    }
    if result? == Written::Written {
        sync_dir(dir)?;
        return Ok(Written::Written);
    }
    Ok(Written::AlreadyExists)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path` (and missing parents) as a directory and sets it to 0700 even if it existed
/// with a laxer mode.
pub(crate) fn ensure_private_dir(path: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(path)?
        }
        Err(e) => return Err(e),
    }
    if !fs::metadata(path)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists and is not a directory",
        ));
    }
    fs::set_permissions(path, Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMethod, ChapAlgorithm, Digest, Secret};

    const TARGET: &str = "iqn.2024-01.test:disk";

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn store() -> (tempfile::TempDir, NodeStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("state")).unwrap();
        (dir, store)
    }

    fn full_node() -> Node {
        Node {
            startup: Startup::Automatic,
            auth: Some(Auth {
                method: AuthMethod::Chap,
                username: Some("alice".into()),
                password: Some(Secret::new("s3cret-s3cret")),
                reverse_username: Some("tgt".into()),
                reverse_password: Some(Secret::new("other-s3cret")),
                chap_algorithms: vec![ChapAlgorithm::Sha3_256, ChapAlgorithm::Md5],
            }),
            negotiation: NegotiationOverrides {
                header_digest: Some(vec![Digest::Crc32c]),
                max_burst_length: Some(1 << 20),
                initial_r2t: Some(true),
                ..Default::default()
            },
            timeouts: TimeoutOverrides {
                replacement: Some(-1),
                noop_interval: Some(0),
                ..Default::default()
            },
            ..Node::new(NodeKey::new(TARGET, "[::1]:3261", 1).unwrap())
        }
    }

    #[test]
    fn portals_are_normalised() {
        for (given, want) in [
            ("127.0.0.1", "127.0.0.1:3260"),
            ("127.0.0.1:3261", "127.0.0.1:3261"),
            ("[::1]", "[::1]:3260"),
            ("[0:0:0:0:0:0:0:1]:3261", "[::1]:3261"),
            ("[FE80::A]:860", "[fe80::a]:860"),
            ("Storage.Example.COM", "storage.example.com:3260"),
            ("san-1:65535", "san-1:65535"),
        ] {
            assert_eq!(normalize_portal(given).unwrap(), want, "{given}");
        }
        for bad in [
            "",
            ":3260",
            "::1",
            "fe80::1:3260",
            "[::1",
            "[::1]3260",
            "[1.2.3.4]",
            "[fe80::1%eth0]:3260",
            "host:",
            "host:0",
            "host:65536",
            "host:+3260",
            "host:32a",
            "1.2.3",
            "256.1.1.1",
            "-host",
            "ho_st",
            "a..b",
            "host/x",
            "host,1",
        ] {
            assert!(normalize_portal(bad).is_err(), "{bad:?} should be refused");
        }
        let e = normalize_portal("fe80::1:3260").unwrap_err().to_string();
        assert!(e.contains("brackets"), "{e}");
    }

    #[test]
    fn file_names_are_escaped() {
        let key = NodeKey::new(TARGET, "[::1]:3261", 1).unwrap();
        assert_eq!(
            key.file_name(),
            "iqn.2024-01.test%3Adisk,%3A%3A1,3261,1.toml"
        );
        let key = NodeKey::new(TARGET, "127.0.0.1", 7).unwrap();
        assert_eq!(
            key.file_name(),
            "iqn.2024-01.test%3Adisk,127.0.0.1,3260,7.toml"
        );
        // Long names stay under the limit and stay distinct.
        let long = |c: &str| format!("iqn.2024-01.org.example:{}", c.repeat(95));
        let (a, b) = (
            NodeKey::new(&long("a:"), "h", 1).unwrap().file_name(),
            NodeKey::new(&long("a:"), "h", 2).unwrap().file_name(),
        );
        assert!(a.len() <= MAX_FILE_NAME && b.len() <= MAX_FILE_NAME, "{a}");
        assert_ne!(a, b);
        assert!(a.ends_with(".toml") && !a.contains('/'));
    }

    #[test]
    fn round_trip() {
        let (_dir, store) = store();
        let node = full_node();
        store.save(&node).unwrap();
        let path = store.path_of(&node.key());
        assert!(
            path.ends_with("iqn.2024-01.test%3Adisk,%3A%3A1,3261,1.toml"),
            "{}",
            path.display()
        );
        let (nodes, errors) = store.load_all();
        assert_eq!(errors, vec![]);
        assert_eq!(nodes, vec![node.clone()]);
        assert_eq!(store.load(&node.key()).unwrap(), Some(node.clone()));
        // What an admin sees in the file.
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(
                "target = \"iqn.2024-01.test:disk\"\nportal = \"[::1]:3261\"\ntpgt = 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("[auth]") && text.contains("chap_algorithms = [\"sha3-256\", \"md5\"]"),
            "{text}"
        );
        // Saving again replaces.
        let changed = Node {
            startup: Startup::Manual,
            auth: None,
            ..node
        };
        store.save(&changed).unwrap();
        assert_eq!(store.load_all().0, vec![changed.clone()]);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("[auth]") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn minimal_record_uses_defaults() {
        let (_dir, store) = store();
        let key = NodeKey::new(TARGET, "10.0.0.1", 1).unwrap();
        fs::write(
            store.path_of(&key),
            format!("target = \"{TARGET}\"\nportal = \"10.0.0.1\"\ntpgt = 1\n"),
        )
        .unwrap();
        let (nodes, errors) = store.load_all();
        assert_eq!(errors, vec![]);
        assert_eq!(nodes, vec![Node::new(key)]);
        let node = &nodes[0];
        assert_eq!(node.effective_auth(&Auth::default()), &Auth::default());
        assert_eq!(
            node.effective_negotiation(&Negotiation::default()),
            Negotiation::default()
        );
    }

    #[test]
    fn permissions_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // Existing directories with lax modes are tightened.
        fs::create_dir_all(state.join(NODES_DIR)).unwrap();
        fs::set_permissions(&state, Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(state.join(NODES_DIR), Permissions::from_mode(0o777)).unwrap();
        let store = NodeStore::open(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(store.dir()), 0o700);
        store.save(&full_node()).unwrap();
        store
            .upsert_discovered(TARGET, "127.0.0.1:3261", 1, Startup::Manual)
            .unwrap();
        let files: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }

    #[test]
    fn corrupt_records_are_reported_and_skipped() {
        let (_dir, store) = store();
        let good = full_node();
        store.save(&good).unwrap();
        let bad_toml = store.dir().join("bad.toml");
        fs::write(&bad_toml, "target = \"iqn.2024-01.test:x\"\nportal = \n").unwrap();
        let unknown = store.dir().join("unknown.toml");
        fs::write(&unknown, "target = \"iqn.2024-01.test:x\"\nportal = \"h\"\ntpgt = 1\n\n[auth]\nmetod = \"chap\"\n").unwrap();
        let range = store.dir().join("range.toml");
        fs::write(&range, "target = \"iqn.2024-01.test:x\"\nportal = \"h\"\ntpgt = 1\n[negotiation]\nmax_burst_length = 10\n")
            .unwrap();
        let renamed = store.dir().join("renamed.toml");
        fs::write(
            &renamed,
            format!("target = \"{TARGET}\"\nportal = \"h\"\ntpgt = 1\n"),
        )
        .unwrap();
        let bad_name = store.dir().join("name.toml");
        fs::write(
            &bad_name,
            "target = \"iqn.2024-01.test:a b\"\nportal = \"h\"\ntpgt = 1\n",
        )
        .unwrap();
        // Not records: ignored.
        fs::write(store.dir().join("README"), "hello").unwrap();
        fs::write(store.dir().join(".x.toml.tmp.1.1"), "garbage").unwrap();

        let (nodes, errors) = store.load_all();
        assert_eq!(nodes, vec![good]);
        let by_path = |p: &Path| {
            errors
                .iter()
                .find(|e| e.path == p)
                .unwrap_or_else(|| panic!("{errors:?}"))
                .message
                .clone()
        };
        assert!(by_path(&bad_toml).starts_with("line 2"), "{errors:?}");
        assert!(
            by_path(&unknown).starts_with("line 6, key auth.metod: unknown field"),
            "{errors:?}"
        );
        assert!(
            by_path(&range)
                .starts_with("line 5, key negotiation.max_burst_length: 10 is out of range"),
            "{errors:?}"
        );
        assert!(
            by_path(&renamed).contains("file name does not match"),
            "{errors:?}"
        );
        assert!(
            by_path(&bad_name).starts_with("line 1, key target:"),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        // Displayed with the path first.
        assert!(errors[0]
            .to_string()
            .starts_with(&store.dir().display().to_string()));
        // A direct load of a damaged record is an error, not a silent None.
        fs::write(store.path_of(&full_node().key()), "tpgt = 1\n").unwrap();
        assert!(matches!(
            store.load(&full_node().key()),
            Err(NodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn upsert_never_overwrites() {
        let (_dir, store) = store();
        let first = store
            .upsert_discovered(TARGET, "127.0.0.1:3261", 1, Startup::Automatic)
            .unwrap();
        let Upsert::Created(created) = first else {
            panic!("expected Created, got {first:?}")
        };
        assert_eq!(created.startup, Startup::Automatic);
        assert_eq!(created.portal, "127.0.0.1:3261");

        // The admin changes settings; rediscovery (with another startup value, and the portal
        // spelled differently) keeps them.
        let mut edited = full_node();
        edited.portal = "127.0.0.1:3261".into();
        store.save(&edited).unwrap();
        let again = store
            .upsert_discovered(TARGET, "127.0.0.1:3261", 1, Startup::Manual)
            .unwrap();
        assert_eq!(again, Upsert::Existing(edited.clone()));
        assert_eq!(store.load_all().0, vec![edited.clone()]);

        // Another tpgt or portal is another node.
        assert!(matches!(
            store
                .upsert_discovered(TARGET, "127.0.0.1:3261", 2, Startup::Manual)
                .unwrap(),
            Upsert::Created(_)
        ));
        assert!(matches!(
            store
                .upsert_discovered(TARGET, "127.0.0.2:3261", 1, Startup::Manual)
                .unwrap(),
            Upsert::Created(_)
        ));
        assert_eq!(store.load_all().0.len(), 3);

        // A damaged existing record is reported, and left as it is.
        let path = store.path_of(&edited.key());
        fs::write(&path, "garbage =").unwrap();
        assert!(matches!(
            store.upsert_discovered(TARGET, "127.0.0.1:3261", 1, Startup::Manual),
            Err(NodeError::Corrupt { .. })
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage =");
        // No temporary files are left behind.
        assert!(fs::read_dir(store.dir()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    }

    #[test]
    fn delete() {
        let (_dir, store) = store();
        let node = full_node();
        store.save(&node).unwrap();
        assert!(store.delete(&node.key()).unwrap());
        assert!(!store.delete(&node.key()).unwrap());
        assert_eq!(store.load(&node.key()).unwrap(), None);
        assert_eq!(store.load_all(), (vec![], vec![]));
    }

    #[test]
    fn invalid_nodes_are_not_saved() {
        let (_dir, store) = store();
        let mut node = full_node();
        node.portal = "[::1]".into();
        assert!(
            matches!(store.save(&node), Err(NodeError::Invalid { ref key, .. }) if key == "portal")
        );
        let mut node = full_node();
        node.auth.as_mut().unwrap().username = None;
        assert!(
            matches!(store.save(&node), Err(NodeError::Invalid { ref key, .. }) if key == "auth.username")
        );
        let mut node = full_node();
        node.target = "iqn.bogus".into();
        assert!(matches!(
            store.save(&node),
            Err(NodeError::InvalidTarget { .. })
        ));
        assert!(matches!(
            NodeKey::new(TARGET, "fe80::1", 1),
            Err(NodeError::InvalidPortal { .. })
        ));
        assert_eq!(store.load_all(), (vec![], vec![]));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let dump = format!("{:?}", full_node());
        assert!(!dump.contains("s3cret"), "{dump}");
        assert!(dump.contains("<redacted>"));
    }

    #[test]
    fn stale_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = NodeStore::open(&state).unwrap();
        let stale = store.dir().join(".a.toml.tmp.999999999.3");
        let ours = store
            .dir()
            .join(format!(".a.toml.tmp.{}.3", std::process::id()));
        fs::write(&stale, "x").unwrap();
        fs::write(&ours, "x").unwrap();
        NodeStore::open(&state).unwrap();
        assert!(!stale.exists());
        assert!(ours.exists());
    }
}
