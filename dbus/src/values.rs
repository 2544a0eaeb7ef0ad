//! The closed string vocabularies of the API: each enum maps to the exact strings on the bus.
//!
//! Parsing is case-sensitive and strict; an unknown string is an [`Error::InvalidArgument`]
//! whose message lists the accepted values, so the daemon can return it as is.

use std::fmt;
use std::str::FromStr;

use crate::Error;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $s:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order of `dbus/API.md`.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string used on the bus.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $s ),+
                }
            }

            /// The accepted strings, joined for messages and help texts ("a, b or c").
            pub fn choices() -> String {
                join_choices(&[$($s),+])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $( $s => Ok($name::$variant), )+
                    _ => Err(Error::InvalidArgument(format!(
                        "{} must be {}, not '{}'",
                        $what,
                        Self::choices(),
                        s.escape_debug()
                    ))),
                }
            }
        }
    };
}

fn join_choices(all: &[&str]) -> String {
    match all {
        [] => String::new(),
        [one] => format!("'{one}'"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|s| format!("'{s}'")).collect();
            format!("{} or '{last}'", init.join(", "))
        }
    }
}

string_enum! {
    /// When a node is logged in: by `LoginAll(automatic-only)` at daemon start, or only on request.
    Startup, "startup" {
        /// Only on an explicit Login.
        Manual = "manual",
        /// Also by LoginAll with `automatic-only` (what the daemon does at boot).
        Automatic = "automatic",
    }
}

string_enum! {
    /// Authentication method offered at login (RFC 7143 §12.1, AuthMethod key).
    AuthMethod, "auth-method" {
        /// `AuthMethod=None`.
        None = "none",
        /// `AuthMethod=CHAP` (RFC 7143 §12.1.3), optionally mutual.
        Chap = "chap",
    }
}

string_enum! {
    /// A CHAP_A algorithm (RFC 7143 §12.1.3; numbers from the IANA PPP authentication
    /// algorithms registry).
    ChapAlgorithm, "a CHAP algorithm" {
        /// CHAP_A=5.
        Md5 = "md5",
        /// CHAP_A=6.
        Sha1 = "sha1",
        /// CHAP_A=7.
        Sha256 = "sha256",
        /// CHAP_A=8.
        Sha3_256 = "sha3-256",
    }
}

impl ChapAlgorithm {
    /// The CHAP_A number sent on the wire.
    pub const fn chap_a(self) -> u8 {
        match self {
            ChapAlgorithm::Md5 => 5,
            ChapAlgorithm::Sha1 => 6,
            ChapAlgorithm::Sha256 => 7,
            ChapAlgorithm::Sha3_256 => 8,
        }
    }
}

string_enum! {
    /// A HeaderDigest / DataDigest value (RFC 7143 §13.1).
    Digest, "a digest" {
        /// `CRC32C`.
        Crc32c = "crc32c",
        /// `None`.
        None = "none",
    }
}

string_enum! {
    /// State of a session object (`Session.State`). Clients must show unknown states as they
    /// come: the API may add states.
    SessionState, "a session state" {
        /// Login phase in progress (RFC 7143 §6).
        LoggingIn = "logging-in",
        /// Full feature phase.
        LoggedIn = "logged-in",
        /// Connection lost, session reinstatement in progress (RFC 7143 §6.3.5).
        Reconnecting = "reconnecting",
        /// Gave up; the object stays until logout so the reason can be read.
        Failed = "failed",
        /// Logout in progress.
        LoggingOut = "logging-out",
    }
}

string_enum! {
    /// Scope of `Manager.SetDefaultAuth`: normal sessions or SendTargets discovery sessions.
    AuthScope, "scope" {
        /// Defaults for normal sessions of nodes without their own credentials.
        Session = "session",
        /// Credentials for discovery sessions (RFC 7143 §13.21, SessionType=Discovery).
        Discovery = "discovery",
    }
}

string_enum! {
    /// Return value of `Node.Update`: when the change takes effect.
    UpdateEffect, "an update effect" {
        /// Already in effect.
        Now = "now",
        /// Used from the next login of the node.
        NextLogin = "next-login",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for v in Startup::ALL {
            assert_eq!(v.as_str().parse::<Startup>().ok(), Some(*v));
        }
        for v in ChapAlgorithm::ALL {
            assert_eq!(v.as_str().parse::<ChapAlgorithm>().ok(), Some(*v));
        }
        for v in SessionState::ALL {
            assert_eq!(v.to_string().parse::<SessionState>().ok(), Some(*v));
        }
    }

    #[test]
    fn bus_strings_are_the_ones_of_the_api() {
        assert_eq!(Startup::Automatic.as_str(), "automatic");
        assert_eq!(AuthMethod::Chap.as_str(), "chap");
        assert_eq!(ChapAlgorithm::Sha3_256.as_str(), "sha3-256");
        assert_eq!(Digest::Crc32c.as_str(), "crc32c");
        assert_eq!(UpdateEffect::NextLogin.as_str(), "next-login");
        assert_eq!(AuthScope::Discovery.as_str(), "discovery");
        assert_eq!(ChapAlgorithm::Sha256.chap_a(), 7);
    }

    #[test]
    fn unknown_value_is_invalid_argument_listing_choices() {
        let err = "Automatic".parse::<Startup>().unwrap_err();
        match err {
            Error::InvalidArgument(m) => {
                assert_eq!(
                    m,
                    "startup must be 'manual' or 'automatic', not 'Automatic'"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = "crc".parse::<Digest>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: a digest must be 'crc32c' or 'none', not 'crc'"
        );
        let err = "x".parse::<ChapAlgorithm>().unwrap_err();
        assert!(err
            .to_string()
            .contains("'md5', 'sha1', 'sha256' or 'sha3-256'"));
    }
}
