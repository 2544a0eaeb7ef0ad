//! Which message bus to use: `--bus system|session|ADDRESS`, shared by lunlinkd and lunlinkctl.

use std::fmt;
use std::str::FromStr;

use zbus::connection::Builder;
use zbus::{Address, Connection};

use crate::Error;

/// The bus to connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusChoice {
    /// The system bus (the default: lunlinkd is a system service).
    #[default]
    System,
    /// The user's session bus.
    Session,
    /// A bus at a D-Bus address, such as `unix:path=/tmp/x/bus.sock` (tests, private buses).
    Address(String),
}

impl FromStr for BusChoice {
    type Err = Error;

    /// `system`, `session`, or a D-Bus address (`transport:key=value,...`).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "system" => Ok(BusChoice::System),
            "session" => Ok(BusChoice::Session),
            addr if addr.contains(':') => match Address::from_str(addr) {
                Ok(_) => Ok(BusChoice::Address(addr.to_owned())),
                Err(e) => Err(Error::InvalidArgument(format!(
                    "'{}' is not a usable D-Bus address: {e}",
                    addr.escape_debug()
                ))),
            },
            other => Err(Error::InvalidArgument(format!(
                "bus must be 'system', 'session' or a D-Bus address such as \
                 'unix:path=/run/x/bus', not '{}'",
                other.escape_debug()
            ))),
        }
    }
}

impl fmt::Display for BusChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusChoice::System => f.write_str("system"),
            BusChoice::Session => f.write_str("session"),
            BusChoice::Address(a) => f.write_str(a),
        }
    }
}

impl BusChoice {
    /// A connection builder for this bus; callers may add names or objects before `build()`.
    ///
    /// Fails when the bus address cannot be determined (e.g. no session bus configured).
    pub fn builder(&self) -> Result<Builder<'static>, Error> {
        let b = match self {
            BusChoice::System => Builder::system(),
            BusChoice::Session => Builder::session(),
            BusChoice::Address(a) => Builder::address(a.as_str()),
        };
        Ok(b?)
    }

    /// Connect to this bus.
    pub async fn connect(&self) -> Result<Connection, Error> {
        Ok(self.builder()?.build().await?)
    }

    /// How to name this bus in a message ("the system bus", "the bus at unix:path=...").
    pub fn describe(&self) -> String {
        match self {
            BusChoice::System => "the system bus".to_owned(),
            BusChoice::Session => "the session bus".to_owned(),
            BusChoice::Address(a) => format!("the bus at {a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!("system".parse::<BusChoice>().ok(), Some(BusChoice::System));
        assert_eq!(
            "session".parse::<BusChoice>().ok(),
            Some(BusChoice::Session)
        );
        assert_eq!(
            "unix:path=/tmp/x/bus.sock".parse::<BusChoice>().ok(),
            Some(BusChoice::Address("unix:path=/tmp/x/bus.sock".into()))
        );
        assert_eq!(BusChoice::default(), BusChoice::System);
    }

    #[test]
    fn refuses_other_words_and_bad_addresses() {
        let e = "System".parse::<BusChoice>().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(e.to_string().contains("'system', 'session'"));
        assert!("nosuchtransport:foo=bar".parse::<BusChoice>().is_err());
        assert!("unix:".parse::<BusChoice>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["system", "session", "unix:path=/run/lunlink/bus"] {
            assert_eq!(
                s.parse::<BusChoice>()
                    .map(|b| b.to_string())
                    .ok()
                    .as_deref(),
                Some(s)
            );
        }
    }

    #[test]
    fn address_builder_does_not_connect_yet() {
        let b = BusChoice::Address("unix:path=/nonexistent/bus".into()).builder();
        assert!(b.is_ok());
    }
}
