//! The options dictionaries (`a{sv}`) of the API: a typed [`Options`] that clients build and
//! the daemon checks against the call it arrived with.
//!
//! Unknown keys, keys the call does not take, wrong types and bad values are all refused with
//! [`Error::InvalidArgument`] (`dbus/API.md`, "Options dictionaries").

use std::collections::HashMap;
use std::fmt;

use zbus::zvariant::{Array, OwnedValue, Value};

use crate::keys;
use crate::values::{AuthMethod, ChapAlgorithm, Digest, Startup};
use crate::Error;

/// An options dictionary as the daemon receives it.
pub type OptionsDict = HashMap<String, OwnedValue>;

/// The calls that take an options dictionary; each accepts its own set of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// `Manager.Discover`.
    Discover,
    /// `Manager.Login` and `Node.Login`.
    Login,
    /// `Manager.LoginAll`.
    LoginAll,
    /// `Manager.Logout` and `Session.Logout`.
    Logout,
    /// `Manager.CreateNode`.
    CreateNode,
    /// `Node.Update`.
    NodeUpdate,
    /// `Manager.SetDefaultAuth`.
    SetDefaultAuth,
}

const AUTH_KEYS: &[&str] = &[
    keys::USERNAME,
    keys::PASSWORD,
    keys::REVERSE_USERNAME,
    keys::REVERSE_PASSWORD,
    keys::AUTH_METHOD,
    keys::CHAP_ALGORITHMS,
];

impl Call {
    /// The D-Bus method name, for messages.
    pub const fn method_name(self) -> &'static str {
        match self {
            Call::Discover => "Discover",
            Call::Login => "Login",
            Call::LoginAll => "LoginAll",
            Call::Logout => "Logout",
            Call::CreateNode => "CreateNode",
            Call::NodeUpdate => "Update",
            Call::SetDefaultAuth => "SetDefaultAuth",
        }
    }

    /// Whether this call accepts `key` (the "used by" column of `dbus/API.md`).
    pub fn accepts(self, key: &str) -> bool {
        let auth = AUTH_KEYS.contains(&key);
        match self {
            Call::Discover => auth || key == keys::STARTUP,
            Call::Login | Call::SetDefaultAuth => auth,
            Call::LoginAll => key == keys::AUTOMATIC_ONLY,
            Call::Logout => key == keys::FORCE,
            Call::CreateNode | Call::NodeUpdate => {
                auth || key == keys::STARTUP
                    || key == keys::HEADER_DIGEST
                    || key == keys::DATA_DIGEST
                    || key == keys::REPLACEMENT_TIMEOUT
                    || key == keys::NOOP_INTERVAL
                    || key == keys::NOOP_TIMEOUT
                    || key == keys::MULTIPATH_POLICY
            }
        }
    }
}

/// Typed contents of an options dictionary; every field is optional ("not given").
///
/// Clients build one with the chained setters and send [`Options::to_dict`]; the daemon reads
/// one with [`Options::from_dict`]. `Debug` never shows the passwords.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// CHAP name the initiator sends.
    pub username: Option<String>,
    /// CHAP secret the initiator proves.
    pub password: Option<String>,
    /// Mutual CHAP: name the target must send.
    pub reverse_username: Option<String>,
    /// Mutual CHAP: secret the target must prove.
    pub reverse_password: Option<String>,
    /// `none` or `chap`; `chap` is implied by a username (see [`Options::effective_auth_method`]).
    pub auth_method: Option<AuthMethod>,
    /// CHAP_A offer, most preferred first; never empty when given.
    pub chap_algorithms: Option<Vec<ChapAlgorithm>>,
    /// Startup of new or updated nodes.
    pub startup: Option<Startup>,
    /// HeaderDigest offer, most preferred first; never empty when given.
    pub header_digest: Option<Vec<Digest>>,
    /// DataDigest offer, most preferred first; never empty when given.
    pub data_digest: Option<Vec<Digest>>,
    /// Logout: remove devices even if in use.
    pub force: Option<bool>,
    /// LoginAll: only nodes with startup=automatic.
    pub automatic_only: Option<bool>,
    /// A node's replacement timeout, seconds (-1: for ever).
    pub replacement_timeout: Option<i32>,
    /// A node's NOP-Out interval, seconds (0: no pings).
    pub noop_interval: Option<u32>,
    /// A node's NOP-Out timeout, seconds.
    pub noop_timeout: Option<u32>,
    /// The path policy of the LUs a node reaches.
    pub multipath_policy: Option<String>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets must not reach logs through a stray `{:?}`.
        let redact = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("Options")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("reverse_username", &self.reverse_username)
            .field("reverse_password", &redact(&self.reverse_password))
            .field("auth_method", &self.auth_method)
            .field("chap_algorithms", &self.chap_algorithms)
            .field("startup", &self.startup)
            .field("header_digest", &self.header_digest)
            .field("data_digest", &self.data_digest)
            .field("force", &self.force)
            .field("automatic_only", &self.automatic_only)
            .field("replacement_timeout", &self.replacement_timeout)
            .field("noop_interval", &self.noop_interval)
            .field("noop_timeout", &self.noop_timeout)
            .field("multipath_policy", &self.multipath_policy)
            .finish()
    }
}

impl Options {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the CHAP name the initiator sends.
    #[must_use]
    pub fn username(mut self, v: impl Into<String>) -> Self {
        self.username = Some(v.into());
        self
    }

    /// Set the CHAP secret.
    #[must_use]
    pub fn password(mut self, v: impl Into<String>) -> Self {
        self.password = Some(v.into());
        self
    }

    /// Set the name the target must send (mutual CHAP).
    #[must_use]
    pub fn reverse_username(mut self, v: impl Into<String>) -> Self {
        self.reverse_username = Some(v.into());
        self
    }

    /// Set the secret the target must prove (mutual CHAP).
    #[must_use]
    pub fn reverse_password(mut self, v: impl Into<String>) -> Self {
        self.reverse_password = Some(v.into());
        self
    }

    /// Set the authentication method.
    #[must_use]
    pub fn auth_method(mut self, v: AuthMethod) -> Self {
        self.auth_method = Some(v);
        self
    }

    /// Set the CHAP_A offer, most preferred first.
    #[must_use]
    pub fn chap_algorithms(mut self, v: Vec<ChapAlgorithm>) -> Self {
        self.chap_algorithms = Some(v);
        self
    }

    /// Set the startup mode.
    #[must_use]
    pub fn startup(mut self, v: Startup) -> Self {
        self.startup = Some(v);
        self
    }

    /// Set the HeaderDigest offer, most preferred first.
    #[must_use]
    pub fn header_digest(mut self, v: Vec<Digest>) -> Self {
        self.header_digest = Some(v);
        self
    }

    /// Set the DataDigest offer, most preferred first.
    #[must_use]
    pub fn data_digest(mut self, v: Vec<Digest>) -> Self {
        self.data_digest = Some(v);
        self
    }

    /// Set `force` (Logout).
    #[must_use]
    pub fn force(mut self, v: bool) -> Self {
        self.force = Some(v);
        self
    }

    /// Set `automatic-only` (LoginAll).
    #[must_use]
    pub fn replacement_timeout(mut self, v: i32) -> Self {
        self.replacement_timeout = Some(v);
        self
    }

    pub fn noop_interval(mut self, v: u32) -> Self {
        self.noop_interval = Some(v);
        self
    }

    pub fn noop_timeout(mut self, v: u32) -> Self {
        self.noop_timeout = Some(v);
        self
    }

    pub fn multipath_policy(mut self, v: impl Into<String>) -> Self {
        self.multipath_policy = Some(v.into());
        self
    }

    pub fn automatic_only(mut self, v: bool) -> Self {
        self.automatic_only = Some(v);
        self
    }

    /// True when no option is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The authentication method these options ask for: the explicit one, else `chap` when a
    /// username is given, else `None` (keep what the node or the defaults have).
    pub fn effective_auth_method(&self) -> Option<AuthMethod> {
        self.auth_method
            .or_else(|| self.username.as_ref().map(|_| AuthMethod::Chap))
    }

    /// The dictionary to send over the bus; only given options appear in it.
    pub fn to_dict(&self) -> HashMap<&'static str, Value<'_>> {
        fn list<T: Copy>(v: &[T], f: fn(T) -> &'static str) -> Value<'static> {
            Value::Array(Array::from(v.iter().map(|x| f(*x)).collect::<Vec<&str>>()))
        }
        let mut d = HashMap::new();
        let strings = [
            (keys::USERNAME, &self.username),
            (keys::PASSWORD, &self.password),
            (keys::REVERSE_USERNAME, &self.reverse_username),
            (keys::REVERSE_PASSWORD, &self.reverse_password),
        ];
        for (k, v) in strings {
            if let Some(v) = v {
                d.insert(k, Value::from(v.as_str()));
            }
        }
        if let Some(v) = self.auth_method {
            d.insert(keys::AUTH_METHOD, Value::from(v.as_str()));
        }
        if let Some(v) = &self.chap_algorithms {
            d.insert(keys::CHAP_ALGORITHMS, list(v, ChapAlgorithm::as_str));
        }
        if let Some(v) = self.startup {
            d.insert(keys::STARTUP, Value::from(v.as_str()));
        }
        if let Some(v) = &self.header_digest {
            d.insert(keys::HEADER_DIGEST, list(v, Digest::as_str));
        }
        if let Some(v) = &self.data_digest {
            d.insert(keys::DATA_DIGEST, list(v, Digest::as_str));
        }
        if let Some(v) = self.force {
            d.insert(keys::FORCE, Value::from(v));
        }
        if let Some(v) = self.automatic_only {
            d.insert(keys::AUTOMATIC_ONLY, Value::from(v));
        }
        if let Some(v) = self.replacement_timeout {
            d.insert(keys::REPLACEMENT_TIMEOUT, Value::from(v));
        }
        if let Some(v) = self.noop_interval {
            d.insert(keys::NOOP_INTERVAL, Value::from(v));
        }
        if let Some(v) = self.noop_timeout {
            d.insert(keys::NOOP_TIMEOUT, Value::from(v));
        }
        if let Some(v) = &self.multipath_policy {
            d.insert(keys::MULTIPATH_POLICY, Value::from(v.as_str()));
        }
        d
    }

    /// Check and read a received dictionary for `call`.
    ///
    /// Refuses, with [`Error::InvalidArgument`], unknown keys, keys `call` does not take,
    /// values of the wrong D-Bus type, unknown enum strings, and empty or repeating lists.
    /// Whether the result makes sense for the object (say, a password for a node without a
    /// username) is for the caller to judge: only it knows the stored settings.
    pub fn from_dict(dict: &OptionsDict, call: Call) -> Result<Self, Error> {
        let mut o = Options::new();
        // Sorted so that the first complaint is the same whatever the hash order.
        let mut entries: Vec<(&String, &OwnedValue)> = dict.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in entries {
            let key = key.as_str();
            if !keys::ALL.contains(&key) {
                return Err(Error::InvalidArgument(format!(
                    "unknown option '{}' (known options: {})",
                    key.escape_debug(),
                    keys::ALL.join(", ")
                )));
            }
            if !call.accepts(key) {
                return Err(Error::InvalidArgument(format!(
                    "option '{key}' does not apply to {}",
                    call.method_name()
                )));
            }
            let v: &Value<'_> = value;
            match key {
                keys::USERNAME => o.username = Some(want_str(key, v)?),
                keys::PASSWORD => o.password = Some(want_str(key, v)?),
                keys::REVERSE_USERNAME => o.reverse_username = Some(want_str(key, v)?),
                keys::REVERSE_PASSWORD => o.reverse_password = Some(want_str(key, v)?),
                keys::AUTH_METHOD => o.auth_method = Some(want_str(key, v)?.parse()?),
                keys::CHAP_ALGORITHMS => o.chap_algorithms = Some(want_list(key, v)?),
                keys::STARTUP => o.startup = Some(want_str(key, v)?.parse()?),
                keys::HEADER_DIGEST => o.header_digest = Some(want_list(key, v)?),
                keys::DATA_DIGEST => o.data_digest = Some(want_list(key, v)?),
                keys::FORCE => o.force = Some(want_bool(key, v)?),
                keys::AUTOMATIC_ONLY => o.automatic_only = Some(want_bool(key, v)?),
                keys::REPLACEMENT_TIMEOUT => match v {
                    Value::I32(n) => o.replacement_timeout = Some(*n),
                    other => return Err(type_error(key, "a 32-bit integer (i)", other)),
                },
                keys::MULTIPATH_POLICY => {
                    let p = want_str(key, v)?;
                    if !["failover", "round-robin", "queue-depth"].contains(&p.as_str()) {
                        return Err(Error::InvalidArgument(format!(
                            "option '{key}' must be failover, round-robin or queue-depth, not '{}'",
                            p.escape_debug()
                        )));
                    }
                    o.multipath_policy = Some(p);
                }
                keys::NOOP_INTERVAL | keys::NOOP_TIMEOUT => {
                    let Value::U32(n) = v else { return Err(type_error(key, "an unsigned 32-bit integer (u)", v)) };
                    if key == keys::NOOP_INTERVAL {
                        o.noop_interval = Some(*n);
                    } else {
                        o.noop_timeout = Some(*n);
                    }
                }
                _ => {
                    return Err(Error::InvalidArgument(format!("unknown option '{key}'")));
                }
            }
        }
        Ok(o)
    }
}

fn type_error(key: &str, want: &str, got: &Value<'_>) -> Error {
    Error::InvalidArgument(format!(
        "option '{key}' must be {want}, not of D-Bus type '{}'",
        got.value_signature()
    ))
}

fn want_str(key: &str, v: &Value<'_>) -> Result<String, Error> {
    match v {
        Value::Str(s) => Ok(s.as_str().to_owned()),
        other => Err(type_error(key, "a string (s)", other)),
    }
}

fn want_bool(key: &str, v: &Value<'_>) -> Result<bool, Error> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(type_error(key, "a boolean (b)", other)),
    }
}

fn want_list<T>(key: &str, v: &Value<'_>) -> Result<Vec<T>, Error>
where
    T: std::str::FromStr<Err = Error> + PartialEq,
{
    let Value::Array(a) = v else {
        return Err(type_error(key, "a list of strings (as)", v));
    };
    let mut out: Vec<T> = Vec::with_capacity(a.len());
    for item in a.iter() {
        let Value::Str(s) = item else {
            return Err(type_error(key, "a list of strings (as)", v));
        };
        let parsed: T = s.as_str().parse()?;
        if out.contains(&parsed) {
            return Err(Error::InvalidArgument(format!(
                "option '{key}' names '{}' twice",
                s.as_str()
            )));
        }
        out.push(parsed);
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "option '{key}' must not be an empty list"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(d: HashMap<&'static str, Value<'_>>) -> OptionsDict {
        d.into_iter()
            .map(|(k, v)| (k.to_owned(), v.try_to_owned().expect("no fds in options")))
            .collect()
    }

    fn invalid(r: Result<Options, Error>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn builder_to_dict_carries_exact_keys_and_types() {
        let o = Options::new()
            .username("iqn.2026-01.org.lunlink:init")
            .password("0123456789ab")
            .chap_algorithms(vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5])
            .startup(Startup::Automatic);
        let d = o.to_dict();
        assert_eq!(d.len(), 4);
        assert_eq!(d["username"], Value::from("iqn.2026-01.org.lunlink:init"));
        assert_eq!(d["password"], Value::from("0123456789ab"));
        assert_eq!(d["startup"], Value::from("automatic"));
        assert_eq!(d["chap-algorithms"].value_signature().to_string(), "as");
        assert_eq!(
            d["chap-algorithms"],
            Value::Array(Array::from(vec!["sha256", "md5"]))
        );
        assert!(Options::new().to_dict().is_empty());
    }

    #[test]
    fn round_trip_through_owned_dict() {
        let o = Options::new()
            .username("u")
            .password("p")
            .reverse_username("t")
            .reverse_password("q")
            .auth_method(AuthMethod::Chap)
            .chap_algorithms(vec![ChapAlgorithm::Sha3_256])
            .startup(Startup::Manual)
            .header_digest(vec![Digest::Crc32c, Digest::None])
            .data_digest(vec![Digest::None]);
        let back = Options::from_dict(&owned(o.to_dict()), Call::CreateNode).expect("valid");
        assert_eq!(back, o);

        let f = Options::new().force(true);
        assert_eq!(
            Options::from_dict(&owned(f.to_dict()), Call::Logout).ok(),
            Some(f)
        );
        let a = Options::new().automatic_only(false);
        assert_eq!(
            Options::from_dict(&owned(a.to_dict()), Call::LoginAll).ok(),
            Some(a)
        );
    }

    #[test]
    fn refuses_unknown_and_misplaced_keys() {
        let mut d = OptionsDict::new();
        d.insert("user".into(), Value::from("x").try_to_owned().expect("str"));
        assert!(invalid(Options::from_dict(&d, Call::Login)).starts_with("unknown option 'user'"));

        let d = owned(Options::new().force(true).to_dict());
        assert_eq!(
            invalid(Options::from_dict(&d, Call::Login)),
            "option 'force' does not apply to Login"
        );
        let d = owned(Options::new().header_digest(vec![Digest::None]).to_dict());
        assert!(Options::from_dict(&d, Call::Discover).is_err());
        assert!(Options::from_dict(&d, Call::NodeUpdate).is_ok());
        let d = owned(Options::new().startup(Startup::Manual).to_dict());
        assert!(Options::from_dict(&d, Call::Discover).is_ok());
        assert!(Options::from_dict(&d, Call::Login).is_err());
    }

    #[test]
    fn refuses_wrong_types_and_values() {
        let mut d = OptionsDict::new();
        d.insert("force".into(), OwnedValue::from(1u32));
        assert_eq!(
            invalid(Options::from_dict(&d, Call::Logout)),
            "option 'force' must be a boolean (b), not of D-Bus type 'u'"
        );

        let mut d = OptionsDict::new();
        d.insert("startup".into(), OwnedValue::from(true));
        assert!(invalid(Options::from_dict(&d, Call::CreateNode)).contains("a string (s)"));

        let mut d = OptionsDict::new();
        d.insert(
            "startup".into(),
            Value::from("boot").try_to_owned().expect("str"),
        );
        assert!(invalid(Options::from_dict(&d, Call::CreateNode)).contains("not 'boot'"));

        let mut d = OptionsDict::new();
        d.insert(
            "data-digest".into(),
            Value::from("crc32c").try_to_owned().expect("str"),
        );
        assert!(invalid(Options::from_dict(&d, Call::CreateNode)).contains("(as)"));

        let mut d = OptionsDict::new();
        let empty: Vec<&str> = Vec::new();
        d.insert(
            "chap-algorithms".into(),
            Value::Array(Array::from(empty))
                .try_to_owned()
                .expect("array"),
        );
        assert!(invalid(Options::from_dict(&d, Call::Login)).contains("empty list"));

        let d = owned(
            Options::new()
                .data_digest(vec![Digest::None, Digest::None])
                .to_dict(),
        );
        assert!(invalid(Options::from_dict(&d, Call::NodeUpdate)).contains("twice"));
    }

    #[test]
    fn debug_hides_passwords() {
        let o = Options::new()
            .username("u")
            .password("hunter2")
            .reverse_password("x9");
        let s = format!("{o:?}");
        assert!(!s.contains("hunter2") && !s.contains("x9"), "{s}");
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn username_implies_chap() {
        assert_eq!(
            Options::new().username("u").effective_auth_method(),
            Some(AuthMethod::Chap)
        );
        assert_eq!(Options::new().effective_auth_method(), None);
        assert_eq!(
            Options::new()
                .username("u")
                .auth_method(AuthMethod::None)
                .effective_auth_method(),
            Some(AuthMethod::None)
        );
    }
}
