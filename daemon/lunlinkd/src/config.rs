//! lunlinkd's configuration file (`/etc/lunlink/lunlink.toml`, or the path given with
//! `--config`).
//!
//! Every key is optional and has a documented default; `config/lunlink.toml` in the source tree
//! lists them all, commented out, and a unit test keeps it equal to [`Config::default`]. A
//! missing file means "all defaults". Unknown keys and bad values are refused, and the error
//! names the file, the line and the key, because a typo that is silently ignored (say
//! `noop_intreval`) is worse than a daemon that refuses to start.
//!
//! The types here are also the building blocks of node records ([`crate::nodes`]): a node's
//! auth settings are an [`Auth`], its overrides refine [`Negotiation`] and [`Timeouts`].

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::initiator_name;

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lunlink/lunlink.toml";

/// Where the daemon keeps its state (initiator name, node records) by default; the unit file's
/// `StateDirectory=lunlink` creates it.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/lunlink";

/// Errors from reading the configuration file. Messages name the file, and where possible the
/// line and the key, so an admin can fix the file without reading code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but could not be read (permissions, I/O error, not UTF-8).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file was read but its content is refused.
    #[error("{}", describe_location(path, *line, key.as_deref(), message))]
    Invalid {
        path: PathBuf,
        /// 1-based line of the offending key or value, when known.
        line: Option<usize>,
        /// Dotted key path, e.g. `timeouts.noop_interval`, when known.
        key: Option<String>,
        message: String,
    },
}

fn describe_location(path: &Path, line: Option<usize>, key: Option<&str>, message: &str) -> String {
    let path = path.display();
    match (line, key) {
        (Some(line), Some(key)) => format!("{path}: line {line}, key {key}: {message}"),
        (Some(line), None) => format!("{path}: line {line}: {message}"),
        (None, Some(key)) => format!("{path}: key {key}: {message}"),
        (None, None) => format!("{path}: {message}"),
    }
}

/// A secret (CHAP password). `Debug` and `Display` print `<redacted>` so that secrets never
/// reach logs, error messages or `{:?}` dumps of a config or node; [`Secret::expose`] is the one
/// way to the value, for the CHAP code.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(SecretVisitor)
    }
}

/// Unlike serde's default errors, which quote the unexpected value, these never repeat what
/// was written: `password = 12345678` without quotes must not end up in a log.
struct SecretVisitor;

impl SecretVisitor {
    fn not_a_string<E: serde::de::Error>() -> E {
        E::custom("a secret must be a quoted string (the value is not shown)")
    }
}

impl serde::de::Visitor<'_> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quoted string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::not_a_string())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::not_a_string())
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::not_a_string())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::not_a_string())
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are few and easy to audit: CHAP responses and node files.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort only: copies made by parsers or reallocations are out of reach, but the
        // long-lived copy does not linger in freed memory.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// `AuthMethod` offered at login (RFC 7143 §12.1): no authentication or CHAP (§12.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    None,
    Chap,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Chap => "chap",
        }
    }

    /// Parses the config / D-Bus spelling (`none`, `chap`).
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        [AuthMethod::None, AuthMethod::Chap]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
}

/// CHAP digest algorithms (the CHAP_A offer, RFC 7143 §12.1.3), in the names the config, node
/// records and the D-Bus API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChapAlgorithm {
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "sha1")]
    Sha1,
    #[serde(rename = "sha256")]
    Sha256,
    #[serde(rename = "sha3-256")]
    Sha3_256,
}

impl ChapAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            ChapAlgorithm::Md5 => "md5",
            ChapAlgorithm::Sha1 => "sha1",
            ChapAlgorithm::Sha256 => "sha256",
            ChapAlgorithm::Sha3_256 => "sha3-256",
        }
    }

    /// Parses the config / D-Bus spelling (`md5`, `sha1`, `sha256`, `sha3-256`).
    pub fn from_name(name: &str) -> Option<ChapAlgorithm> {
        [
            ChapAlgorithm::Md5,
            ChapAlgorithm::Sha1,
            ChapAlgorithm::Sha256,
            ChapAlgorithm::Sha3_256,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

fn default_chap_algorithms() -> Vec<ChapAlgorithm> {
    // MD5 is the one algorithm every target speaks (RFC 7143 §12.1.3 makes it mandatory).
    vec![ChapAlgorithm::Md5]
}

/// Authentication settings for one kind of login: the config's `[auth.session]` and
/// `[auth.discovery]` defaults, or a node's own `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub method: AuthMethod,
    /// CHAP_N the initiator sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret the initiator proves it knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Mutual CHAP: the CHAP_N the target must send back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse_username: Option<String>,
    /// Mutual CHAP: the secret the target must prove it knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse_password: Option<Secret>,
    /// CHAP_A offer, in order of preference.
    pub chap_algorithms: Vec<ChapAlgorithm>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            method: AuthMethod::None,
            username: None,
            password: None,
            reverse_username: None,
            reverse_password: None,
            chap_algorithms: default_chap_algorithms(),
        }
    }
}

/// RFC 7143 §6.1: text values are at most 255 bytes unless a key says otherwise.
const MAX_TEXT_VALUE: usize = 255;

impl Auth {
    /// Checks the settings hang together (CHAP needs a name and secret, mutual CHAP both
    /// reverse fields, RFC 7143 §9.2.1 distinct secrets); `prefix` is the key path of the
    /// section (`auth.session`, `auth`) used in messages.
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        check_list(
            &format!("{prefix}.chap_algorithms"),
            &self.chap_algorithms,
            |a| a.as_str(),
        )?;
        for (field, value) in [
            ("username", self.username.as_deref()),
            ("reverse_username", self.reverse_username.as_deref()),
        ] {
            if let Some(value) = value {
                check_text(&format!("{prefix}.{field}"), value)?;
            }
        }
        for (field, value) in [
            ("password", &self.password),
            ("reverse_password", &self.reverse_password),
        ] {
            if let Some(secret) = value {
                check_secret(&format!("{prefix}.{field}"), secret)?;
            }
        }
        match self.method {
            AuthMethod::None => {
                // Credentials next to method = "none" are almost always a forgotten
                // method = "chap"; logging in without them would fail far from the cause.
                let set = [
                    ("username", self.username.is_some()),
                    ("password", self.password.is_some()),
                    ("reverse_username", self.reverse_username.is_some()),
                    ("reverse_password", self.reverse_password.is_some()),
                ];
                if let Some((field, _)) = set.iter().find(|(_, is_set)| *is_set) {
                    return Err(InvalidSetting::new(
                        format!("{prefix}.{field}"),
                        "is set but method is \"none\"; set method = \"chap\" to use it, or remove it",
                    ));
                }
            }
            AuthMethod::Chap => {
                if self.username.is_none() {
                    return Err(InvalidSetting::new(
                        format!("{prefix}.username"),
                        "is required when method is \"chap\"",
                    ));
                }
                if self.password.is_none() {
                    return Err(InvalidSetting::new(
                        format!("{prefix}.password"),
                        "is required when method is \"chap\"",
                    ));
                }
                match (&self.reverse_username, &self.reverse_password) {
                    (Some(_), None) => {
                        return Err(InvalidSetting::new(
                            format!("{prefix}.reverse_password"),
                            "is required when reverse_username is set (mutual CHAP)",
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(InvalidSetting::new(
                            format!("{prefix}.reverse_username"),
                            "is required when reverse_password is set (mutual CHAP)",
                        ))
                    }
                    _ => {}
                }
                // RFC 7143 §9.2.1: a secret used to authenticate the initiator must not also
                // authenticate a target, or a rogue target can reflect our own response.
                if let (Some(forward), Some(reverse)) = (&self.password, &self.reverse_password) {
                    if forward == reverse {
                        return Err(InvalidSetting::new(
                            format!("{prefix}.reverse_password"),
                            "must differ from password (RFC 7143 §9.2.1: one secret must not \
                             authenticate both the initiator and the target)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Data integrity digests (RFC 7143 §13.1, HeaderDigest / DataDigest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Digest {
    None,
    Crc32c,
}

impl Digest {
    pub fn as_str(self) -> &'static str {
        match self {
            Digest::None => "none",
            Digest::Crc32c => "crc32c",
        }
    }

    /// Parses the config / D-Bus spelling (`none`, `crc32c`).
    pub fn from_name(name: &str) -> Option<Digest> {
        [Digest::None, Digest::Crc32c]
            .into_iter()
            .find(|d| d.as_str() == name)
    }
}

/// `[timeouts]`, all in seconds. These are the initiator's own timers, not negotiated keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Whole login phase of one connection (RFC 7143 §6.2).
    pub login: u32,
    /// Logout request to response (RFC 7143 §11.14).
    pub logout: u32,
    /// Idle time before a NOP-Out ping (RFC 7143 §11.18); 0 disables pings.
    pub noop_interval: u32,
    /// Time a ping may stay unanswered before the connection counts as dead; 0 disables.
    pub noop_timeout: u32,
    /// After a connection is lost: how long I/O is held while reconnecting before it fails.
    /// 0 fails I/O at once, -1 holds it for ever.
    pub replacement: i32,
    /// A SCSI command without a response for this long is aborted (RFC 7143 §11.5 task
    /// management).
    pub command: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            login: 15,
            logout: 15,
            noop_interval: 5,
            noop_timeout: 5,
            replacement: 120,
            command: 30,
        }
    }
}

/// What to do with I/O while a lost connection is being replaced (`timeouts.replacement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    FailAtOnce,
    After(Duration),
    QueueForever,
}

impl Timeouts {
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login.into())
    }

    pub fn logout_timeout(&self) -> Duration {
        Duration::from_secs(self.logout.into())
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command.into())
    }

    /// `None` when pings are disabled.
    pub fn noop_interval(&self) -> Option<Duration> {
        (self.noop_interval > 0).then(|| Duration::from_secs(self.noop_interval.into()))
    }

    /// `None` when unanswered pings never end a connection.
    pub fn noop_timeout(&self) -> Option<Duration> {
        (self.noop_timeout > 0).then(|| Duration::from_secs(self.noop_timeout.into()))
    }

    pub fn replacement_policy(&self) -> Replacement {
        match u64::try_from(self.replacement) {
            Ok(0) => Replacement::FailAtOnce,
            Ok(secs) => Replacement::After(Duration::from_secs(secs)),
            Err(_) => Replacement::QueueForever,
        }
    }

    /// This set with a node's overrides applied.
    pub fn with_overrides(&self, o: &TimeoutOverrides) -> Timeouts {
        Timeouts {
            login: o.login.unwrap_or(self.login),
            logout: o.logout.unwrap_or(self.logout),
            noop_interval: o.noop_interval.unwrap_or(self.noop_interval),
            noop_timeout: o.noop_timeout.unwrap_or(self.noop_timeout),
            replacement: o.replacement.unwrap_or(self.replacement),
            command: o.command.unwrap_or(self.command),
        }
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        TimeoutOverrides {
            login: Some(self.login),
            logout: Some(self.logout),
            noop_interval: Some(self.noop_interval),
            noop_timeout: Some(self.noop_timeout),
            replacement: Some(self.replacement),
            command: Some(self.command),
        }
        .validate(prefix)
    }
}

/// A node's `[timeouts]`: each key replaces the daemon-wide value when set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noop_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noop_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<u32>,
}

impl TimeoutOverrides {
    pub fn is_empty(&self) -> bool {
        self == &TimeoutOverrides::default()
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        let u = |v: Option<u32>| v.map(i64::from);
        let checks = [
            ("login", u(self.login), 1, 3600, " seconds"),
            ("logout", u(self.logout), 1, 3600, " seconds"),
            (
                "noop_interval",
                u(self.noop_interval),
                0,
                3600,
                " seconds (0 disables pings)",
            ),
            (
                "noop_timeout",
                u(self.noop_timeout),
                0,
                3600,
                " seconds (0 disables the check)",
            ),
            (
                "replacement",
                self.replacement.map(i64::from),
                -1,
                86400,
                " seconds (0 fails I/O at once, -1 holds it for ever)",
            ),
            ("command", u(self.command), 1, 86400, " seconds"),
        ];
        for (field, value, min, max, unit) in checks {
            if let Some(value) = value {
                check_range(&format!("{prefix}.{field}"), value, min, max, unit)?;
            }
        }
        Ok(())
    }
}

/// RFC 7143 §13.12-§13.14: data segment and burst lengths are 512 to 2^24-1 bytes.
const MIN_LENGTH: i64 = 512;
const MAX_LENGTH: i64 = 16_777_215;

/// `[negotiation]`: what the initiator offers at login (RFC 7143 §13). The target may answer
/// with less; these are the initiator's side of the negotiation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Negotiation {
    /// HeaderDigest offer in order of preference (RFC 7143 §13.1).
    pub header_digest: Vec<Digest>,
    /// DataDigest offer in order of preference (RFC 7143 §13.1).
    pub data_digest: Vec<Digest>,
    /// MaxRecvDataSegmentLength declared by the initiator (RFC 7143 §13.12).
    pub max_recv_data_segment_length: u32,
    /// MaxBurstLength (RFC 7143 §13.13).
    pub max_burst_length: u32,
    /// FirstBurstLength (RFC 7143 §13.14); must not exceed MaxBurstLength.
    pub first_burst_length: u32,
    /// ImmediateData (RFC 7143 §13.11).
    pub immediate_data: bool,
    /// InitialR2T (RFC 7143 §13.10).
    pub initial_r2t: bool,
}

impl Default for Negotiation {
    fn default() -> Self {
        Negotiation {
            header_digest: vec![Digest::None],
            data_digest: vec![Digest::None],
            max_recv_data_segment_length: 262_144,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            immediate_data: true,
            initial_r2t: false,
        }
    }
}

impl Negotiation {
    /// This offer with a node's overrides applied. FirstBurstLength is lowered to
    /// MaxBurstLength when an override makes it larger (RFC 7143 §13.14 forbids the
    /// opposite): a node that lowers max_burst_length alone should not need first_burst_length
    /// too.
    pub fn with_overrides(&self, o: &NegotiationOverrides) -> Negotiation {
        let max_burst_length = o.max_burst_length.unwrap_or(self.max_burst_length);
        Negotiation {
            header_digest: o
                .header_digest
                .clone()
                .unwrap_or_else(|| self.header_digest.clone()),
            data_digest: o
                .data_digest
                .clone()
                .unwrap_or_else(|| self.data_digest.clone()),
            max_recv_data_segment_length: o
                .max_recv_data_segment_length
                .unwrap_or(self.max_recv_data_segment_length),
            max_burst_length,
            first_burst_length: o
                .first_burst_length
                .unwrap_or(self.first_burst_length)
                .min(max_burst_length),
            immediate_data: o.immediate_data.unwrap_or(self.immediate_data),
            initial_r2t: o.initial_r2t.unwrap_or(self.initial_r2t),
        }
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        NegotiationOverrides {
            header_digest: Some(self.header_digest.clone()),
            data_digest: Some(self.data_digest.clone()),
            max_recv_data_segment_length: Some(self.max_recv_data_segment_length),
            max_burst_length: Some(self.max_burst_length),
            first_burst_length: Some(self.first_burst_length),
            immediate_data: Some(self.immediate_data),
            initial_r2t: Some(self.initial_r2t),
        }
        .validate(prefix)
    }
}

/// A node's `[negotiation]`: each key replaces the daemon-wide value when set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NegotiationOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_digest: Option<Vec<Digest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_digest: Option<Vec<Digest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_recv_data_segment_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_burst_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_burst_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immediate_data: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_r2t: Option<bool>,
}

impl NegotiationOverrides {
    pub fn is_empty(&self) -> bool {
        self == &NegotiationOverrides::default()
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        for (field, list) in [
            ("header_digest", &self.header_digest),
            ("data_digest", &self.data_digest),
        ] {
            if let Some(list) = list {
                check_list(&format!("{prefix}.{field}"), list, |d| d.as_str())?;
            }
        }
        let lengths = [
            (
                "max_recv_data_segment_length",
                self.max_recv_data_segment_length,
                "§13.12",
            ),
            ("max_burst_length", self.max_burst_length, "§13.13"),
            ("first_burst_length", self.first_burst_length, "§13.14"),
        ];
        for (field, value, section) in lengths {
            if let Some(value) = value {
                check_range(
                    &format!("{prefix}.{field}"),
                    i64::from(value),
                    MIN_LENGTH,
                    MAX_LENGTH,
                    &format!(" bytes (RFC 7143 {section})"),
                )?;
            }
        }
        if let (Some(first), Some(max)) = (self.first_burst_length, self.max_burst_length) {
            if first > max {
                return Err(InvalidSetting {
                    key: format!("{prefix}.first_burst_length"),
                    fallback_key: Some(format!("{prefix}.max_burst_length")),
                    message: format!(
                        "first_burst_length ({first}) is larger than max_burst_length ({max}); \
                         RFC 7143 §13.14 requires first_burst_length <= max_burst_length"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `[devices]`: the ublk block devices made for LUNs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Devices {
    /// Requests in flight per ublk queue.
    pub queue_depth: u16,
    /// ublk queues (threads) per device.
    pub nr_queues: u16,
    /// false: log in and report LUNs, but make no block devices.
    pub enabled: bool,
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            queue_depth: 128,
            nr_queues: 1,
            enabled: true,
        }
    }
}

impl Devices {
    fn validate(&self) -> Result<(), InvalidSetting> {
        check_range(
            "devices.queue_depth",
            i64::from(self.queue_depth),
            1,
            1024,
            "",
        )?;
        check_range("devices.nr_queues", i64::from(self.nr_queues), 1, 16, "")
    }
}

/// `[multipath]`: how a logical unit reached through several sessions (portals) uses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Multipath {
    /// `failover`, `round-robin` or `queue-depth` (fewest commands in flight).
    pub policy: String,
    /// Seconds a command may wait on a path while another path is usable, before the path
    /// counts as failed and the command moves (a silent path: a pulled cable sends no RST).
    pub path_timeout: u32,
    /// Seconds between probes (TEST UNIT READY) of failed paths: how soon one that is back
    /// carries IO again.
    pub check_interval: u32,
    /// Seconds IO waits when no path is usable, then fails with EIO; -1 waits for ever. For
    /// LUs with several paths this, not the node's replacement timeout, decides.
    pub no_path_timeout: i32,
}

impl Default for Multipath {
    fn default() -> Self {
        Multipath { policy: "queue-depth".into(), path_timeout: 3, check_interval: 2, no_path_timeout: 60 }
    }
}

impl Multipath {
    fn validate(&self) -> Result<(), InvalidSetting> {
        if lunlink_multipath::Policy::from_name(&self.policy).is_none() {
            return Err(InvalidSetting::new(
                "multipath.policy",
                format!("{:?} is not a policy: use failover, round-robin or queue-depth", self.policy),
            ));
        }
        check_range("multipath.path_timeout", i64::from(self.path_timeout), 1, 3600, " seconds")?;
        check_range("multipath.check_interval", i64::from(self.check_interval), 1, 3600, " seconds")?;
        if self.no_path_timeout != -1 {
            check_range("multipath.no_path_timeout", i64::from(self.no_path_timeout), 0, 86_400, " seconds, or -1")?;
        }
        Ok(())
    }

    /// The policy and timers for the multipath layer.
    pub fn layer(&self) -> (lunlink_multipath::Policy, lunlink_multipath::Timers) {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        (
            lunlink_multipath::Policy::from_name(&self.policy).unwrap_or_default(),
            lunlink_multipath::Timers {
                path_timeout: secs(self.path_timeout),
                check_interval: secs(self.check_interval),
                no_path_timeout: u32::try_from(self.no_path_timeout).ok().map(secs),
            },
        )
    }
}

/// `[initiator]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitiatorSettings {
    /// InitiatorName (RFC 7143 §13.5), normalised to lowercase. `None`: generated once and
    /// kept in the state directory (see [`crate::initiator_name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// InitiatorAlias (RFC 7143 §13.7), a human-readable label sent at login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// `[auth.session]` and `[auth.discovery]`: the defaults used when a node (or a Discover call)
/// brings no credentials of its own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AuthDefaults {
    /// Normal (session) logins.
    pub session: Auth,
    /// SendTargets discovery sessions.
    pub discovery: Auth,
}

/// The whole configuration, typed and validated. `Default` is the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Config {
    pub initiator: InitiatorSettings,
    pub auth: AuthDefaults,
    pub timeouts: Timeouts,
    pub negotiation: Negotiation,
    pub devices: Devices,
    pub multipath: Multipath,
}

/// The file as written: like [`Config`] but secrets may come from files.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    initiator: InitiatorSettings,
    auth: AuthFileSections,
    timeouts: Timeouts,
    negotiation: Negotiation,
    devices: Devices,
    multipath: Multipath,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AuthFileSections {
    session: AuthFile,
    discovery: AuthFile,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AuthFile {
    method: AuthMethod,
    username: Option<String>,
    password: Option<Secret>,
    password_file: Option<PathBuf>,
    reverse_username: Option<String>,
    reverse_password: Option<Secret>,
    reverse_password_file: Option<PathBuf>,
    chap_algorithms: Vec<ChapAlgorithm>,
}

impl Default for AuthFile {
    fn default() -> Self {
        let auth = Auth::default();
        AuthFile {
            method: auth.method,
            username: None,
            password: None,
            password_file: None,
            reverse_username: None,
            reverse_password: None,
            reverse_password_file: None,
            chap_algorithms: auth.chap_algorithms.clone(),
        }
    }
}

impl AuthFile {
    /// Reads `*_file` secrets; relative paths are taken from the config file's directory.
    fn resolve(self, prefix: &str, base: &Path) -> Result<Auth, InvalidSetting> {
        let password = read_secret(prefix, "password", self.password, self.password_file, base)?;
        let reverse_password = read_secret(
            prefix,
            "reverse_password",
            self.reverse_password,
            self.reverse_password_file,
            base,
        )?;
        Ok(Auth {
            method: self.method,
            username: self.username,
            password,
            reverse_username: self.reverse_username,
            reverse_password,
            chap_algorithms: self.chap_algorithms,
        })
    }
}

fn read_secret(
    prefix: &str,
    field: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<Secret>, InvalidSetting> {
    let Some(file) = file else { return Ok(inline) };
    let key = format!("{prefix}.{field}_file");
    if inline.is_some() {
        return Err(InvalidSetting::new(
            key,
            format!("set either {field} or {field}_file, not both"),
        ));
    }
    let path = base.join(&file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        InvalidSetting::new(key.clone(), format!("cannot read {}: {e}", path.display()))
    })?;
    // Editors add a final newline; it is never part of the secret.
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(InvalidSetting::new(
            key,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Some(Secret::new(secret)))
}

impl Config {
    /// Reads and validates the configuration at `path`. A missing file gives the defaults, so a
    /// fresh install runs without one.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and validates configuration text. `path` names the file in messages and anchors
    /// relative `password_file` paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |problem: TomlProblem| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: problem.line,
            key: problem.key,
            message: problem.message,
        };
        let file: ConfigFile = parse_toml(text).map_err(invalid)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let located = |e: InvalidSetting| invalid(e.locate(text));

        let name = match file.initiator.name {
            Some(name) => Some(
                initiator_name::normalize_name(&name)
                    .map_err(|e| located(InvalidSetting::new("initiator.name", e.to_string())))?,
            ),
            None => None,
        };
        if let Some(alias) = &file.initiator.alias {
            check_text("initiator.alias", alias).map_err(located)?;
        }
        let session = file
            .auth
            .session
            .resolve("auth.session", base)
            .map_err(located)?;
        let discovery = file
            .auth
            .discovery
            .resolve("auth.discovery", base)
            .map_err(located)?;
        let config = Config {
            initiator: InitiatorSettings {
                name,
                alias: file.initiator.alias,
            },
            auth: AuthDefaults { session, discovery },
            timeouts: file.timeouts,
            negotiation: file.negotiation,
            devices: file.devices,
            multipath: file.multipath,
        };
        config.validate().map_err(located)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        self.auth.session.validate("auth.session")?;
        self.auth.discovery.validate("auth.discovery")?;
        self.timeouts.validate("timeouts")?;
        self.negotiation.validate("negotiation")?;
        self.devices.validate()?;
        self.multipath.validate()
    }
}

/// A refused setting, named by its dotted key path (`auth.session.password`). Returned by the
/// `validate` methods, which the D-Bus adaptor can use on settings it assembles from options;
/// the config loader ties it to a file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key}: {message}")]
#[non_exhaustive]
pub struct InvalidSetting {
    /// Dotted key path of the value at fault.
    pub key: String,
    /// Key to point at when `key` is absent from the file (its default is in play): for
    /// rules that tie two keys together.
    pub fallback_key: Option<String>,
    pub message: String,
}

impl InvalidSetting {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidSetting {
            key: key.into(),
            fallback_key: None,
            message: message.into(),
        }
    }

    /// Finds the line of the key in the document it came from.
    pub(crate) fn locate(self, text: &str) -> TomlProblem {
        let mut found = line_of_key(text, &self.key).map(|line| (line, self.key.clone()));
        if found.is_none() {
            if let Some(fallback) = &self.fallback_key {
                found = line_of_key(text, fallback).map(|line| (line, fallback.clone()));
            }
        }
        match found {
            Some((line, key)) => TomlProblem {
                line: Some(line),
                key: Some(key),
                message: self.message,
            },
            None => TomlProblem {
                line: None,
                key: Some(self.key),
                message: self.message,
            },
        }
    }
}

fn check_range(
    key: &str,
    value: i64,
    min: i64,
    max: i64,
    unit: &str,
) -> Result<(), InvalidSetting> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(InvalidSetting::new(
            key,
            format!("{value} is out of range: must be {min} to {max}{unit}"),
        ))
    }
}

/// An ordered offer list: at least one entry, none twice.
fn check_list<T: PartialEq + Copy>(
    key: &str,
    list: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<(), InvalidSetting> {
    if list.is_empty() {
        return Err(InvalidSetting::new(key, "must list at least one value"));
    }
    for (i, item) in list.iter().enumerate() {
        if list[..i].contains(item) {
            return Err(InvalidSetting::new(
                key,
                format!("lists \"{}\" twice", name(*item)),
            ));
        }
    }
    Ok(())
}

/// A text value sent on the wire (names, alias): 1 to 255 bytes (RFC 7143 §6.1), no control
/// characters (a NUL would end the key=value pair early).
pub(crate) fn check_text(key: &str, value: &str) -> Result<(), InvalidSetting> {
    if value.is_empty() {
        return Err(InvalidSetting::new(key, "is empty; remove the key instead"));
    }
    if value.len() > MAX_TEXT_VALUE {
        return Err(InvalidSetting::new(
            key,
            format!(
                "is {} bytes long; the limit is {MAX_TEXT_VALUE}",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidSetting::new(key, "contains a control character"));
    }
    Ok(())
}

fn check_secret(key: &str, secret: &Secret) -> Result<(), InvalidSetting> {
    let value = secret.expose();
    // Messages about secrets never quote them.
    if value.is_empty() {
        return Err(InvalidSetting::new(key, "is empty"));
    }
    if value.len() > MAX_TEXT_VALUE {
        return Err(InvalidSetting::new(
            key,
            format!("is longer than {MAX_TEXT_VALUE} bytes"),
        ));
    }
    if value.contains('\0') {
        return Err(InvalidSetting::new(key, "contains a NUL byte"));
    }
    Ok(())
}

/// A TOML problem tied to a line and key where they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TomlProblem {
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for TomlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.key) {
            (Some(line), Some(key)) => write!(f, "line {line}, key {key}: {}", self.message),
            (Some(line), None) => write!(f, "line {line}: {}", self.message),
            (None, Some(key)) => write!(f, "key {key}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Deserialises TOML text, turning toml's byte span into a line and the dotted key path the
/// error sits in.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlProblem> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let (line, key) = match e.span() {
            Some(span) => (Some(line_of_offset(text, span.start)), key_at(text, &span)),
            None => (None, None),
        };
        TomlProblem {
            line,
            key,
            message: tidy_message(e.message()),
        }
    })
}

/// toml's messages may span lines, and serde's name our private structs ("expected struct
/// AuthFile"); one line that speaks of tables reads better in a log.
fn tidy_message(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    const STRUCT: &str = "expected struct ";
    match joined.find(STRUCT) {
        Some(at) => {
            let rest = &joined[at + STRUCT.len()..];
            let after = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or("", |i| &rest[i..]);
            format!("{}expected a table{after}", &joined[..at])
        }
        None => joined,
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Whether an error span starts inside `outer` (toml reports some errors with empty spans).
fn contains(outer: &Option<Range<usize>>, inner: &Range<usize>) -> bool {
    outer
        .as_ref()
        .is_some_and(|o| o.start <= inner.start && inner.start < o.end.max(o.start + 1))
}

/// The dotted key path whose key or value holds `span`, deepest first.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut path = Vec::new();
    walk_to(doc.as_table(), span, &mut path).then(|| path.join("."))
}

fn walk_to(table: &dyn toml_edit::TableLike, span: &Range<usize>, path: &mut Vec<String>) -> bool {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        path.push(name.to_string());
        if let Some(inner) = item.as_table_like() {
            // Section bodies are not inside the header's span, so look inside first.
            if walk_to(inner, span, path) {
                return true;
            }
        }
        if contains(&key.span(), span) || contains(&item.span(), span) {
            return true;
        }
        path.pop();
    }
    false
}

/// The 1-based line where the dotted key `key` is written, if it is in the text.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut segments = key.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (k, item) = table.get_key_value(segment)?;
        if segments.peek().is_none() {
            let span = k.span().or_else(|| item.span())?;
            return Some(line_of_offset(text, span.start));
        }
        table = item.as_table_like()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/lunlink/lunlink.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new(PATH))
    }

    fn invalid(text: &str) -> (Option<usize>, Option<String>, String, String) {
        match parse(text) {
            Err(e @ ConfigError::Invalid { .. }) => {
                let shown = e.to_string();
                let ConfigError::Invalid {
                    line, key, message, ..
                } = e
                else {
                    unreachable!()
                };
                (line, key, message, shown)
            }
            other => panic!("expected an InvalidSetting error, got {other:?}"),
        }
    }

    /// The example file with its explanations (`##`) dropped and its settings (`# key = ...`)
    /// uncommented.
    fn uncommented_example() -> String {
        let mut out = String::new();
        for line in include_str!("../../../config/lunlink.toml").lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("##") || trimmed == "#" {
                continue;
            }
            match trimmed.strip_prefix("# ") {
                Some(setting) => out.push_str(setting),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn example_file_is_the_defaults() {
        let text = uncommented_example();
        // Guard against a broken uncommenting step making this test vacuous.
        assert!(text.contains("noop_interval = 5"), "{text}");
        assert_eq!(parse(&text).unwrap(), Config::default());
        // As shipped (everything commented) it is the defaults too.
        assert_eq!(
            parse(include_str!("../../../config/lunlink.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn example_file_lists_every_key() {
        fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(t) => keys(&path, t, out),
                    _ => out.push(path),
                }
            }
        }
        let (mut documented, mut defaults) = (Vec::new(), Vec::new());
        keys(
            "",
            &toml::from_str(&uncommented_example()).unwrap(),
            &mut documented,
        );
        keys(
            "",
            &toml::Table::try_from(Config::default()).unwrap(),
            &mut defaults,
        );
        documented.sort();
        defaults.sort();
        assert_eq!(documented, defaults);
        // Keys without a default are explained in prose; make sure they are at least named.
        let example = include_str!("../../../config/lunlink.toml");
        for key in [
            "name =",
            "alias =",
            "username =",
            "password =",
            "password_file =",
            "reverse_username =",
            "reverse_password =",
            "reverse_password_file =",
        ] {
            assert!(
                example.contains(key),
                "config/lunlink.toml does not mention {key}"
            );
        }
    }

    #[test]
    fn defaults_are_the_documented_values() {
        let c = Config::default();
        assert_eq!(c.timeouts.login, 15);
        assert_eq!(
            c.timeouts.replacement_policy(),
            Replacement::After(Duration::from_secs(120))
        );
        assert_eq!(c.negotiation.first_burst_length, 65536);
        assert_eq!(c.negotiation.header_digest, vec![Digest::None]);
        assert!(c.negotiation.immediate_data && !c.negotiation.initial_r2t);
        assert_eq!(
            c.devices,
            Devices {
                queue_depth: 128,
                nr_queues: 1,
                enabled: true
            }
        );
        assert_eq!(c.auth.session.chap_algorithms, vec![ChapAlgorithm::Md5]);
        assert_eq!(c.auth.session.method, AuthMethod::None);
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
[initiator]
name = "EUI.02004567A425678D"
alias = "db host 1"

[auth.session]
method = "chap"
username = "alice"
password = "secret-secret"
reverse_username = "target1"
reverse_password = "other-secret"
chap_algorithms = ["sha256", "md5"]

[timeouts]
noop_interval = 0
replacement = -1

[negotiation]
header_digest = ["crc32c", "none"]
max_burst_length = 1048576

[devices]
enabled = false
"#,
        )
        .unwrap();
        // Names are normalised to the lowercase form the RFC puts on the wire.
        assert_eq!(c.initiator.name.as_deref(), Some("eui.02004567a425678d"));
        assert_eq!(c.initiator.alias.as_deref(), Some("db host 1"));
        assert_eq!(c.auth.session.method, AuthMethod::Chap);
        assert_eq!(
            c.auth.session.password.as_ref().map(Secret::expose),
            Some("secret-secret")
        );
        assert_eq!(
            c.auth.session.chap_algorithms,
            vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5]
        );
        assert_eq!(c.auth.discovery, Auth::default());
        assert_eq!(c.timeouts.noop_interval(), None);
        assert_eq!(c.timeouts.noop_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(c.timeouts.replacement_policy(), Replacement::QueueForever);
        assert_eq!(
            c.negotiation.header_digest,
            vec![Digest::Crc32c, Digest::None]
        );
        assert_eq!(c.negotiation.max_burst_length, 1_048_576);
        assert!(!c.devices.enabled);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let (line, key, message, shown) = invalid("[timeouts]\nlogin = 10\n\nnoop_intreval = 5\n");
        assert_eq!(line, Some(4));
        assert_eq!(key.as_deref(), Some("timeouts.noop_intreval"));
        assert!(
            message.contains("unknown field `noop_intreval`"),
            "{message}"
        );
        assert!(
            shown.starts_with(
                "/etc/lunlink/lunlink.toml: line 4, key timeouts.noop_intreval: unknown field"
            ),
            "{shown}"
        );
    }

    #[test]
    fn unknown_section_is_refused() {
        let (line, key, _, shown) = invalid("[devices]\nenabled = true\n[timeoutz]\nlogin = 3\n");
        assert_eq!(line, Some(3));
        assert_eq!(key.as_deref(), Some("timeoutz"), "{shown}");
    }

    #[test]
    fn unknown_key_in_nested_section() {
        let (line, key, _, _) = invalid("[auth.discovery]\nmethod = \"none\"\nuser = \"x\"\n");
        assert_eq!(line, Some(3));
        assert_eq!(key.as_deref(), Some("auth.discovery.user"));
    }

    #[test]
    fn wrong_type_names_the_key() {
        let (line, key, message, shown) =
            invalid("# comment\n\n[timeouts]\nlogin = 10\nlogout = 10\n\nnoop_interval = \"5\"\n");
        assert_eq!(line, Some(7));
        assert_eq!(key.as_deref(), Some("timeouts.noop_interval"));
        assert!(message.contains("invalid type"), "{message}");
        assert!(
            shown.starts_with(
                "/etc/lunlink/lunlink.toml: line 7, key timeouts.noop_interval: invalid type"
            ),
            "{shown}"
        );
    }

    #[test]
    fn bad_enum_value_names_the_key() {
        let (line, key, message, _) = invalid("[negotiation]\ndata_digest = [\"crc32\"]\n");
        assert_eq!(line, Some(2));
        assert_eq!(key.as_deref(), Some("negotiation.data_digest"));
        assert!(message.contains("crc32"), "{message}");
        let (_, key, _, _) = invalid("[auth.session]\nmethod = \"kerberos\"\n");
        assert_eq!(key.as_deref(), Some("auth.session.method"));
    }

    #[test]
    fn negative_where_unsigned_is_refused() {
        let (line, key, _, _) = invalid("[timeouts]\ncommand = -5\n");
        assert_eq!(line, Some(2));
        assert_eq!(key.as_deref(), Some("timeouts.command"));
    }

    #[test]
    fn syntax_error_names_the_line() {
        let (line, _, _, shown) = invalid("[timeouts]\nlogin = \n");
        assert_eq!(line, Some(2), "{shown}");
    }

    #[test]
    fn out_of_range_values_name_key_and_line() {
        let cases = [
            (
                "[negotiation]\nmax_burst_length = 511\n",
                "negotiation.max_burst_length",
                2,
            ),
            (
                "[negotiation]\nmax_recv_data_segment_length = 16777216\n",
                "negotiation.max_recv_data_segment_length",
                2,
            ),
            ("[devices]\nqueue_depth = 0\n", "devices.queue_depth", 2),
            (
                "[devices]\n\nqueue_depth = 1025\n",
                "devices.queue_depth",
                3,
            ),
            ("[devices]\nnr_queues = 17\n", "devices.nr_queues", 2),
            ("[timeouts]\nlogin = 0\n", "timeouts.login", 2),
            ("[timeouts]\nreplacement = -2\n", "timeouts.replacement", 2),
            (
                "[negotiation]\nheader_digest = []\n",
                "negotiation.header_digest",
                2,
            ),
            (
                "[negotiation]\nheader_digest = [\"none\", \"none\"]\n",
                "negotiation.header_digest",
                2,
            ),
            (
                "[auth.session]\nchap_algorithms = []\n",
                "auth.session.chap_algorithms",
                2,
            ),
        ];
        for (text, want_key, want_line) in cases {
            let (line, key, message, shown) = invalid(text);
            assert_eq!(key.as_deref(), Some(want_key), "{text}: {shown}");
            assert_eq!(line, Some(want_line), "{text}: {shown}");
            assert!(!message.is_empty());
        }
        let (_, _, message, _) = invalid("[devices]\nqueue_depth = 0\n");
        assert_eq!(message, "0 is out of range: must be 1 to 1024");
    }

    #[test]
    fn accepted_range_edges() {
        let c = parse(
            "[negotiation]\nmax_recv_data_segment_length = 512\nmax_burst_length = 16777215\n\
             first_burst_length = 16777215\n[timeouts]\nreplacement = 0\nnoop_timeout = 0\n\
             [devices]\nqueue_depth = 1024\nnr_queues = 16\n",
        )
        .unwrap();
        assert_eq!(c.timeouts.replacement_policy(), Replacement::FailAtOnce);
        assert_eq!(c.devices.nr_queues, 16);
    }

    #[test]
    fn first_burst_above_max_burst() {
        // Both in the file: the error points at first_burst_length.
        let (line, key, message, _) =
            invalid("[negotiation]\nmax_burst_length = 4096\nfirst_burst_length = 8192\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(3), Some("negotiation.first_burst_length"))
        );
        assert!(
            message.contains("8192") && message.contains("4096"),
            "{message}"
        );
        // Only max_burst_length in the file: the default first burst (65536) is too big, and the
        // error points at the line the admin wrote.
        let (line, key, _, _) = invalid("[negotiation]\nmax_burst_length = 4096\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(2), Some("negotiation.max_burst_length"))
        );
    }

    #[test]
    fn bad_initiator_name_is_refused() {
        let (line, key, message, _) =
            invalid("[initiator]\nname = \"iqn.2024-13.org.example:x\"\n");
        assert_eq!((line, key.as_deref()), (Some(2), Some("initiator.name")));
        assert!(message.contains("month"), "{message}");
    }

    #[test]
    fn chap_rules() {
        let (_, key, _, _) = invalid("[auth.session]\nmethod = \"chap\"\npassword = \"p\"\n");
        assert_eq!(key.as_deref(), Some("auth.session.username"));
        let (line, key, _, _) = invalid("[auth.session]\nmethod = \"chap\"\nusername = \"u\"\n");
        // The password is missing, so there is no line to show.
        assert_eq!(
            (line, key.as_deref()),
            (None, Some("auth.session.password"))
        );
        let (_, key, _, _) = invalid("[auth.session]\nusername = \"u\"\n");
        assert_eq!(key.as_deref(), Some("auth.session.username"));
        let (_, key, message, _) = invalid(
            "[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword = \"same\"\n\
             reverse_username = \"t\"\nreverse_password = \"same\"\n",
        );
        assert_eq!(key.as_deref(), Some("auth.session.reverse_password"));
        assert!(message.contains("9.2.1"));
        let (_, key, _, _) =
            invalid("[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword = \"p\"\nreverse_username = \"t\"\n");
        assert_eq!(key.as_deref(), Some("auth.session.reverse_password"));
        let (_, key, _, _) =
            invalid("[auth.session]\nmethod = \"chap\"\nusername = \"\"\npassword = \"p\"\n");
        assert_eq!(key.as_deref(), Some("auth.session.username"));
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let c = parse(
            "[auth.discovery]\nmethod = \"chap\"\nusername = \"u\"\npassword = \"hunter2-hunter2\"\n\
             reverse_username = \"t\"\nreverse_password = \"swordfish-swordfish\"\n",
        )
        .unwrap();
        let dump = format!("{c:?} {c:#?}");
        assert!(
            !dump.contains("hunter2") && !dump.contains("swordfish"),
            "{dump}"
        );
        assert!(dump.contains("<redacted>"));
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "<redacted> <redacted>");
        // An error about a secret does not quote it.
        let e = parse("[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword = \"a\\u0000b-hunter2\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("auth.session.password") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn unquoted_secret_is_not_echoed() {
        for value in ["12345678", "12345678.5", "true"] {
            let (line, key, message, shown) = invalid(&format!(
                "[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword = {value}\n"
            ));
            assert_eq!(
                (line, key.as_deref()),
                (Some(4), Some("auth.session.password")),
                "{shown}"
            );
            assert!(message.contains("quoted string"), "{message}");
            assert!(!shown.contains(value), "{shown}");
        }
    }

    #[test]
    fn messages_are_one_line_and_speak_of_tables() {
        let (_, key, message, _) = invalid("[auth]\nsession = 5\n");
        assert_eq!(key.as_deref(), Some("auth.session"));
        assert_eq!(message, "invalid type: integer `5`, expected a table");
        let (_, _, message, _) = invalid("[timeouts]\nlogin = \n");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn settings_assembled_in_code_can_be_validated() {
        // What the D-Bus adaptor does with SetDefaultAuth options.
        let auth = Auth {
            method: AuthMethod::Chap,
            username: Some("u".into()),
            ..Auth::default()
        };
        let e = auth.validate("auth.session").unwrap_err();
        assert_eq!(e.key, "auth.session.password");
        assert_eq!(
            e.to_string(),
            "key auth.session.password: is required when method is \"chap\""
        );
        let ok = Auth {
            password: Some(Secret::new("p")),
            ..auth
        };
        assert_eq!(ok.validate("auth.session"), Ok(()));
        let t = TimeoutOverrides {
            login: Some(0),
            ..Default::default()
        };
        assert_eq!(t.validate("timeouts").unwrap_err().key, "timeouts.login");
        assert_eq!(AuthMethod::from_name("chap"), Some(AuthMethod::Chap));
        assert_eq!(
            ChapAlgorithm::from_name("sha3-256"),
            Some(ChapAlgorithm::Sha3_256)
        );
        assert_eq!(ChapAlgorithm::from_name("SHA1"), None);
        assert_eq!(Digest::from_name("crc32c"), Some(Digest::Crc32c));
    }

    #[test]
    fn password_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("session.secret"), "from-a-file\n").unwrap();
        let conf = dir.path().join("lunlink.toml");
        let c = Config::from_toml(
            "[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword_file = \"session.secret\"\n",
            &conf,
        )
        .unwrap();
        assert_eq!(
            c.auth.session.password.as_ref().map(Secret::expose),
            Some("from-a-file")
        );

        let e = Config::from_toml(
            "[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword_file = \"missing.secret\"\n",
            &conf,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 4, key auth.session.password_file: cannot read"),
            "{e}"
        );
        assert!(e.contains("missing.secret"), "{e}");

        let e = Config::from_toml(
            "[auth.session]\nmethod = \"chap\"\nusername = \"u\"\npassword = \"x\"\npassword_file = \"session.secret\"\n",
            &conf,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn missing_file_is_defaults_and_unreadable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::load(&dir.path().join("absent.toml")).unwrap(),
            Config::default()
        );
        // A directory cannot be read as a file.
        let e = Config::load(dir.path()).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
        let path = dir.path().join("lunlink.toml");
        std::fs::write(&path, "[devices]\nnr_queues = 2\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().devices.nr_queues, 2);
    }

    #[test]
    fn overrides_merge() {
        let base = Negotiation::default();
        let o = NegotiationOverrides {
            max_burst_length: Some(16384),
            data_digest: Some(vec![Digest::Crc32c]),
            ..Default::default()
        };
        let merged = base.with_overrides(&o);
        assert_eq!(merged.max_burst_length, 16384);
        // Lowered with max_burst_length so the offer stays legal.
        assert_eq!(merged.first_burst_length, 16384);
        assert_eq!(merged.data_digest, vec![Digest::Crc32c]);
        assert_eq!(merged.header_digest, vec![Digest::None]);
        assert!(merged.validate("negotiation").is_ok());

        let t = Timeouts::default().with_overrides(&TimeoutOverrides {
            command: Some(5),
            ..Default::default()
        });
        assert_eq!(t.command_timeout(), Duration::from_secs(5));
        assert_eq!(t.login, 15);
    }
}
