//! Well-known names of the lunlink D-Bus API (see `dbus/API.md`).
//!
//! The major version is part of every name: the API grows by addition only, and a breaking
//! change would be published as `Initiator2` beside this one.

/// Bus name owned by `lunlinkd`.
pub const BUS_NAME: &str = "org.lunlink.Initiator1";

/// Path of the root object: `org.freedesktop.DBus.ObjectManager` and the Manager interface.
pub const ROOT_PATH: &str = "/org/lunlink/Initiator1";

/// Interface of the root object.
pub const MANAGER_INTERFACE: &str = "org.lunlink.Initiator1.Manager";
/// Interface of each node object (a target + portal the initiator knows about).
pub const NODE_INTERFACE: &str = "org.lunlink.Initiator1.Node";
/// Interface of each session object.
pub const SESSION_INTERFACE: &str = "org.lunlink.Initiator1.Session";
/// Interface of each LUN object.
pub const LUN_INTERFACE: &str = "org.lunlink.Initiator1.Lun";
/// Interface of each logical unit object (a LU with all its paths).
pub const LOGICAL_UNIT_INTERFACE: &str = "org.lunlink.Initiator1.LogicalUnit";
/// The standard interface clients use to list every object in one call.
pub const OBJECT_MANAGER_INTERFACE: &str = "org.freedesktop.DBus.ObjectManager";

/// Prefix of every lunlink D-Bus error name (`org.lunlink.Initiator1.Error.InUse`, ...).
pub const ERROR_PREFIX: &str = "org.lunlink.Initiator1.Error";

/// Value of an object-path property that points nowhere (`Node.Session` when not logged in).
pub const NO_OBJECT_PATH: &str = "/";

/// Keys of the options dictionaries (`a{sv}`), see the table in `dbus/API.md`.
pub mod keys {
    /// `s`: CHAP name the initiator sends (RFC 7143 §12.1.3, CHAP_N).
    pub const USERNAME: &str = "username";
    /// `s`: CHAP secret; write-only, never readable back.
    pub const PASSWORD: &str = "password";
    /// `s`: mutual CHAP, the name the target must send.
    pub const REVERSE_USERNAME: &str = "reverse-username";
    /// `s`: mutual CHAP, the secret the target must prove.
    pub const REVERSE_PASSWORD: &str = "reverse-password";
    /// `s`: `none` or `chap` (RFC 7143 §12.1, AuthMethod).
    pub const AUTH_METHOD: &str = "auth-method";
    /// `as`: order of the CHAP_A offer (RFC 7143 §12.1.3).
    pub const CHAP_ALGORITHMS: &str = "chap-algorithms";
    /// `s`: `manual` or `automatic`.
    pub const STARTUP: &str = "startup";
    /// `as`: HeaderDigest offer in order of preference (RFC 7143 §13.1).
    pub const HEADER_DIGEST: &str = "header-digest";
    /// `as`: DataDigest offer in order of preference (RFC 7143 §13.1).
    pub const DATA_DIGEST: &str = "data-digest";
    /// `b`: Logout removes devices even if they are in use.
    pub const FORCE: &str = "force";
    /// `b`: LoginAll only logs in to nodes with startup=automatic.
    pub const AUTOMATIC_ONLY: &str = "automatic-only";
    /// A node's replacement timeout in seconds (i: 0 fails IO at once, -1 holds it for ever).
    pub const REPLACEMENT_TIMEOUT: &str = "replacement-timeout";
    /// A node's NOP-Out interval in seconds (u, 0 disables pings).
    pub const NOOP_INTERVAL: &str = "noop-interval";
    /// A node's NOP-Out timeout in seconds (u).
    pub const NOOP_TIMEOUT: &str = "noop-timeout";
    /// The path policy of the LUs a node reaches (s: failover, round-robin, queue-depth).
    pub const MULTIPATH_POLICY: &str = "multipath-policy";

    /// Every key the API knows, in the order of `dbus/API.md`.
    pub const ALL: &[&str] = &[
        USERNAME,
        PASSWORD,
        REVERSE_USERNAME,
        REVERSE_PASSWORD,
        AUTH_METHOD,
        CHAP_ALGORITHMS,
        STARTUP,
        HEADER_DIGEST,
        DATA_DIGEST,
        FORCE,
        AUTOMATIC_ONLY,
        REPLACEMENT_TIMEOUT,
        NOOP_INTERVAL,
        NOOP_TIMEOUT,
        MULTIPATH_POLICY,
    ];
}
