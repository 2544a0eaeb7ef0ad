//! Exit codes and the errors lunlinkctl raises itself.
//!
//! Every failure ends as one line on stderr and one of the codes below; scripts tell the
//! common cases apart by code. The table is repeated in `lunlinkctl --help`.

use lunlink_dbus::Error as BusError;

/// Success.
pub const OK: u8 = 0;
/// Any failure not listed below.
pub const FAILURE: u8 = 1;
/// Bad usage or invalid argument (clap also exits 2 on usage errors).
pub const INVALID: u8 = 2;
/// No such node, session, LUN or target.
pub const NOT_FOUND: u8 = 3;
/// A device is mounted or held, or the node is logged in.
pub const IN_USE: u8 = 4;
/// CHAP authentication failed.
pub const AUTH: u8 = 5;
/// The bus or lunlinkd cannot be reached.
pub const DAEMON_UNREACHABLE: u8 = 6;
/// The target portal cannot be reached or did not answer in time.
pub const TARGET_UNREACHABLE: u8 = 7;
/// The target refused the login for another reason.
pub const LOGIN_REFUSED: u8 = 8;
/// polkit or the bus policy refused the call.
pub const PERMISSION: u8 = 9;
/// The request is not supported by lunlinkd or the target.
pub const NOT_SUPPORTED: u8 = 10;
/// `login --all`: at least one node failed (each is named on stderr).
pub const SOME_FAILED: u8 = 11;

/// The exit status table for `--help`.
pub const HELP: &str = "\
Exit status:
   0  success
   1  other failure (daemon or protocol error)
   2  invalid argument or usage, or an ambiguous TARGET
   3  not found: no such node, session, LUN or target
   4  in use: a device is mounted or held, or the node is logged in
   5  authentication failed (CHAP)
   6  lunlinkd unreachable: no bus, daemon not running or not answering
   7  target unreachable: connection to the portal failed or timed out
   8  login refused by the target for another reason
   9  not authorized: polkit (or the bus policy) refused the action
  10  not supported
  11  login --all: at least one node failed to log in (one line per failed node on
      stderr); the nodes that logged in stay logged in";

/// Failures found by lunlinkctl itself, before or without asking the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// A bad argument or input file.
    #[error("{0}")]
    Invalid(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A name matches several objects; the message lists them.
    #[error("{0}")]
    Ambiguous(String),
    /// Some of several operations failed; each was reported already.
    #[error("{0}")]
    SomeFailed(String),
    /// The bus could not be reached at all.
    #[error("cannot connect to {bus}")]
    Unreachable {
        /// "the system bus", ...
        bus: String,
        /// Why (boxed: it is large and rare).
        source: Box<BusError>,
    },
}

impl CtlError {
    fn code(&self) -> u8 {
        match self {
            CtlError::Invalid(_) | CtlError::Ambiguous(_) => INVALID,
            CtlError::NotFound(_) => NOT_FOUND,
            CtlError::Unreachable { .. } => DAEMON_UNREACHABLE,
            CtlError::SomeFailed(_) => SOME_FAILED,
        }
    }
}

/// The exit code for a D-Bus error from lunlinkd or the bus.
pub fn bus_error_code(e: &BusError) -> u8 {
    match e {
        BusError::AuthenticationFailed(_) => AUTH,
        BusError::TargetNotFound(_) | BusError::NotFound(_) => NOT_FOUND,
        BusError::ConnectionFailed(_) | BusError::Timeout(_) => TARGET_UNREACHABLE,
        BusError::InUse(_) => IN_USE,
        BusError::InvalidArgument(_) => INVALID,
        BusError::LoginFailed(_) => LOGIN_REFUSED,
        BusError::NotSupported(_) => NOT_SUPPORTED,
        BusError::NotAuthorized(_) => PERMISSION,
        e if e.is_service_unknown() || e.is_no_reply() => DAEMON_UNREACHABLE,
        e if e.is_access_denied() => PERMISSION,
        e if e.bus_error_name().as_deref() == Some("org.freedesktop.DBus.Error.UnknownObject") => {
            NOT_FOUND
        }
        BusError::ZBus(zbus::Error::InputOutput(_)) => DAEMON_UNREACHABLE,
        _ => FAILURE,
    }
}

/// The exit code for a failure: the first error in the chain that has a known code.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CtlError>() {
            return e.code();
        }
        if let Some(e) = cause.downcast_ref::<BusError>() {
            return bus_error_code(e);
        }
    }
    FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn codes_follow_the_cause_through_context() {
        let e = Err::<(), _>(BusError::AuthenticationFailed("CHAP_R mismatch".into()))
            .context("login failed")
            .unwrap_err();
        assert_eq!(code_for(&e), AUTH);
        assert_eq!(
            format!("{e:#}"),
            "login failed: authentication failed: CHAP_R mismatch"
        );

        let e = anyhow::Error::new(BusError::InUse("mounted".into())).context("logout failed");
        assert_eq!(code_for(&e), IN_USE);
        let e = anyhow::Error::new(CtlError::Ambiguous("two portals".into()));
        assert_eq!(code_for(&e), INVALID);
        let e = anyhow::anyhow!("something else");
        assert_eq!(code_for(&e), FAILURE);
    }

    #[test]
    fn bus_failures_have_their_own_codes() {
        let unknown = BusError::from(zbus::fdo::Error::ServiceUnknown("no".into()));
        assert_eq!(bus_error_code(&unknown), DAEMON_UNREACHABLE);
        let denied = BusError::from(zbus::fdo::Error::AccessDenied("no".into()));
        assert_eq!(bus_error_code(&denied), PERMISSION);
        let gone = BusError::from(zbus::fdo::Error::UnknownObject("no".into()));
        assert_eq!(bus_error_code(&gone), NOT_FOUND);
        assert_eq!(
            bus_error_code(&BusError::Timeout(String::new())),
            TARGET_UNREACHABLE
        );
        assert_eq!(bus_error_code(&BusError::Failed(String::new())), FAILURE);
    }

    #[test]
    fn every_code_is_in_the_help_table() {
        for code in [
            OK,
            FAILURE,
            INVALID,
            NOT_FOUND,
            IN_USE,
            AUTH,
            DAEMON_UNREACHABLE,
            TARGET_UNREACHABLE,
            LOGIN_REFUSED,
            PERMISSION,
            NOT_SUPPORTED,
            SOME_FAILED,
        ] {
            assert!(
                HELP.contains(&format!("{code:>4}  ")),
                "code {code} missing from help"
            );
        }
    }
}
