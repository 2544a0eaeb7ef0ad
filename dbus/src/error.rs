//! The named errors of the lunlink D-Bus API (`org.lunlink.Initiator1.Error.*`).

use zbus::DBusError;

/// An error returned by `lunlinkd` over D-Bus, or a failure of the bus itself.
///
/// The daemon returns one of the named variants; the D-Bus error name is
/// `org.lunlink.Initiator1.Error.<Variant>` and the message is meant for a person.
/// Proxies in [`crate::proxy`] turn a reply with one of these names back into the same
/// variant, so clients can `match` on it.
#[derive(Debug, DBusError)]
#[zbus(prefix = "org.lunlink.Initiator1.Error", impl_display = false)]
#[non_exhaustive]
pub enum Error {
    /// The bus, the connection or an error name outside this API (for example
    /// `org.freedesktop.DBus.Error.ServiceUnknown` when lunlinkd is not running).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The target refused our CHAP credentials, or failed to prove its own (mutual CHAP).
    AuthenticationFailed(String),
    /// The target does not know the requested target name (login status 0x0203, RFC 7143
    /// §11.13.5).
    TargetNotFound(String),
    /// The TCP connection to the portal could not be made or was lost.
    ConnectionFailed(String),
    /// The target did not answer in time.
    Timeout(String),
    /// The object is busy: a device is mounted or held, or a node is logged in.
    InUse(String),
    /// A bad argument or option (unknown key, wrong type, malformed portal or name).
    InvalidArgument(String),
    /// No such node, session or LUN.
    NotFound(String),
    /// The target refused the login with a status other than the ones above.
    LoginFailed(String),
    /// The target broke the iSCSI protocol.
    ProtocolError(String),
    /// The request is valid but this initiator or the target does not support it.
    NotSupported(String),
    /// Any other failure.
    Failed(String),
    /// polkit refused the caller the action the method needs; the message names the action.
    NotAuthorized(String),
}

impl Error {
    /// The D-Bus error name when this is a bus error outside this API
    /// (e.g. `org.freedesktop.DBus.Error.ServiceUnknown`), `None` otherwise.
    pub fn bus_error_name(&self) -> Option<String> {
        match self {
            Error::ZBus(zbus::Error::MethodError(name, _, _)) => Some(name.to_string()),
            Error::ZBus(zbus::Error::FDO(e)) => Some(DBusError::name(e.as_ref()).to_string()),
            _ => None,
        }
    }

    /// True when the reply says nobody owns the lunlinkd bus name (daemon not running and
    /// not activatable), as opposed to an error from the daemon itself.
    pub fn is_service_unknown(&self) -> bool {
        matches!(
            self.bus_error_name().as_deref(),
            Some("org.freedesktop.DBus.Error.ServiceUnknown")
                | Some("org.freedesktop.DBus.Error.NameHasNoOwner")
        )
    }

    /// True when the bus refused the call by policy (polkit or bus configuration).
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self.bus_error_name().as_deref(),
            Some("org.freedesktop.DBus.Error.AccessDenied")
                | Some("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
        )
    }

    /// True when the call got no answer in time.
    pub fn is_no_reply(&self) -> bool {
        matches!(
            self.bus_error_name().as_deref(),
            Some("org.freedesktop.DBus.Error.NoReply") | Some("org.freedesktop.DBus.Error.Timeout")
        )
    }

    /// The message carried by a named error (without the kind prefix).
    pub fn message(&self) -> Option<&str> {
        DBusError::description(self)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // "kind: message": the kind in words an admin reads, the message from the daemon.
        let (kind, msg) = match self {
            Error::ZBus(e) => return fmt_bus_error(e, f),
            Error::AuthenticationFailed(m) => ("authentication failed", m),
            Error::TargetNotFound(m) => ("target not found", m),
            Error::ConnectionFailed(m) => ("connection failed", m),
            Error::Timeout(m) => ("timed out", m),
            Error::InUse(m) => ("in use", m),
            Error::InvalidArgument(m) => ("invalid argument", m),
            Error::NotFound(m) => ("not found", m),
            Error::LoginFailed(m) => ("login refused", m),
            Error::ProtocolError(m) => ("protocol error", m),
            Error::NotSupported(m) => ("not supported", m),
            Error::Failed(m) => ("failed", m),
            Error::NotAuthorized(m) => ("not authorized", m),
        };
        if msg.is_empty() {
            f.write_str(kind)
        } else {
            write!(f, "{kind}: {msg}")
        }
    }
}

fn fmt_bus_error(e: &zbus::Error, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let (name, desc) = match e {
        zbus::Error::MethodError(name, desc, _) => (name.to_string(), desc.clone()),
        zbus::Error::FDO(fdo) => (
            DBusError::name(fdo.as_ref()).to_string(),
            DBusError::description(fdo.as_ref()).map(str::to_owned),
        ),
        other => return write!(f, "D-Bus failure: {other}"),
    };
    let desc = desc.unwrap_or_default();
    match name.as_str() {
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
            write!(
                f,
                "lunlinkd is not running (nobody owns {} on this bus)",
                crate::BUS_NAME
            )
        }
        "org.freedesktop.DBus.Error.AccessDenied"
        | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
            write!(f, "permission denied: {desc}")
        }
        "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout" => {
            write!(f, "lunlinkd did not answer in time: {desc}")
        }
        "org.freedesktop.DBus.Error.UnknownObject" => {
            write!(
                f,
                "the object is gone (logged out or deleted meanwhile): {desc}"
            )
        }
        "org.freedesktop.DBus.Error.UnknownMethod"
        | "org.freedesktop.DBus.Error.UnknownInterface"
        | "org.freedesktop.DBus.Error.UnknownProperty" => {
            write!(
                f,
                "lunlinkd does not offer this call (older version?): {desc}"
            )
        }
        _ if desc.is_empty() => write!(f, "D-Bus error {name}"),
        _ => write!(f, "D-Bus error {name}: {desc}"),
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        Error::from(zbus::Error::from(e))
    }
}

impl From<zbus::zvariant::Error> for Error {
    fn from(e: zbus::zvariant::Error) -> Self {
        Error::ZBus(zbus::Error::Variant(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::message::Message;

    fn all_named() -> Vec<(Error, &'static str)> {
        let m = || "m".to_owned();
        vec![
            (Error::AuthenticationFailed(m()), "AuthenticationFailed"),
            (Error::TargetNotFound(m()), "TargetNotFound"),
            (Error::ConnectionFailed(m()), "ConnectionFailed"),
            (Error::Timeout(m()), "Timeout"),
            (Error::InUse(m()), "InUse"),
            (Error::InvalidArgument(m()), "InvalidArgument"),
            (Error::NotFound(m()), "NotFound"),
            (Error::LoginFailed(m()), "LoginFailed"),
            (Error::ProtocolError(m()), "ProtocolError"),
            (Error::NotSupported(m()), "NotSupported"),
            (Error::Failed(m()), "Failed"),
        ]
    }

    #[test]
    fn names_are_prefix_dot_variant() {
        for (e, short) in all_named() {
            assert_eq!(
                e.name().as_str(),
                format!("{}.{short}", crate::ERROR_PREFIX)
            );
            assert_eq!(e.message(), Some("m"));
        }
    }

    /// A reply built by the daemon side turns back into the same variant on the client side.
    #[test]
    fn reply_round_trips_through_zbus_error() {
        let call = Message::method_call(crate::ROOT_PATH, "Login")
            .and_then(|b| b.destination(crate::BUS_NAME))
            .and_then(|b| b.interface(crate::MANAGER_INTERFACE))
            .and_then(|b| b.build(&()))
            .expect("method call");
        for (e, short) in all_named() {
            let reply = e.create_reply(&call.header()).expect("reply");
            let back = Error::from(zbus::Error::from(reply));
            assert_eq!(back.name().as_str(), e.name().as_str(), "{short}");
            assert_eq!(back.message(), Some("m"));
        }
    }

    #[test]
    fn display_is_for_people() {
        let e = Error::AuthenticationFailed("CHAP_R mismatch".into());
        assert_eq!(e.to_string(), "authentication failed: CHAP_R mismatch");
        assert_eq!(Error::InUse(String::new()).to_string(), "in use");
        let e = Error::from(zbus::fdo::Error::ServiceUnknown("x".into()));
        assert!(e.is_service_unknown());
        assert_eq!(
            e.to_string(),
            "lunlinkd is not running (nobody owns org.lunlink.Initiator1 on this bus)"
        );
        let e = Error::from(zbus::fdo::Error::AccessDenied("not root".into()));
        assert!(e.is_access_denied() && !e.is_service_unknown());
        assert_eq!(e.to_string(), "permission denied: not root");
    }
}
