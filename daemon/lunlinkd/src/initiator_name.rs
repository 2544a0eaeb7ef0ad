//! The initiator's iSCSI name (RFC 7143 §4.2.7 names, sent as InitiatorName, §13.5).
//!
//! Targets grant access by initiator name, so the name must never change behind an admin's
//! back: when the config does not set one, it is generated once and kept in
//! `<state-dir>/initiator-name`. Generation is a pure function; the caller passes the date and
//! the random bytes.
//!
//! The validation helpers are public: the D-Bus adaptor uses them on target names it receives.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::nodes::{ensure_private_dir, write_file_atomic, Written};

/// RFC 7143 §4.2.7.1: an iSCSI name is at most 223 bytes.
pub const MAX_NAME_BYTES: usize = 223;

/// File in the state directory that keeps a generated name.
pub const NAME_FILE: &str = "initiator-name";

/// The three name formats of RFC 7143 §4.2.7.3-§4.2.7.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `iqn.YYYY-MM.reversed.domain[:unique]`
    Iqn,
    /// `eui.` and 16 hex digits (an EUI-64)
    Eui,
    /// `naa.` and 16 or 32 hex digits (a T11 NAA identifier)
    Naa,
}

/// Why a name or its stored copy was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("the iSCSI name is empty")]
    Empty,
    #[error(
        "iSCSI name {name:?} is {len} bytes long; the limit is {MAX_NAME_BYTES} (RFC 7143 §4.2.7)"
    )]
    TooLong { name: String, len: usize },
    #[error(
        "iSCSI name {name:?} contains {ch:?}; only lowercase a-z, 0-9, '-', '.' and ':' are allowed \
         (RFC 7143 §4.2.7.2)"
    )]
    BadCharacter { name: String, ch: char },
    #[error(
        "iSCSI name {name:?} must start with \"iqn.\", \"eui.\" or \"naa.\" (RFC 7143 §4.2.7)"
    )]
    UnknownType { name: String },
    #[error("iSCSI name {name:?}: {reason}")]
    Malformed { name: String, reason: &'static str },
    #[error("{date:?} is not a year and month in YYYY-MM form")]
    BadDate { date: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}; fix or remove the file (targets may know this host by that name)", path.display())]
    BadStoredName { path: PathBuf, reason: String },
}

/// Checks `name` is an iSCSI name in the normalised form that goes on the wire (RFC 7143
/// §4.2.7): lowercase, `iqn.`/`eui.`/`naa.` with their structure, at most 223 bytes.
///
/// Only the ASCII subset of the RFC 3722 stringprep profile is accepted: lunlink refuses
/// names with other Unicode characters rather than compare them wrongly.
pub fn validate_name(name: &str) -> Result<NameKind, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong {
            name: name.to_string(),
            len: name.len(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '.' | ':'))
    {
        return Err(NameError::BadCharacter {
            name: name.to_string(),
            ch,
        });
    }
    let malformed = |reason| NameError::Malformed {
        name: name.to_string(),
        reason,
    };
    if let Some(rest) = name.strip_prefix("iqn.") {
        check_iqn(rest).map_err(malformed)?;
        Ok(NameKind::Iqn)
    } else if let Some(hex) = name.strip_prefix("eui.") {
        // §4.2.7.5: the EUI-64 in hexadecimal.
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(
                "an eui. name has exactly 16 hex digits after \"eui.\"",
            ));
        }
        Ok(NameKind::Eui)
    } else if let Some(hex) = name.strip_prefix("naa.") {
        // §4.2.7.6: a 64-bit or 128-bit NAA identifier in hexadecimal.
        if !(hex.len() == 16 || hex.len() == 32) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(
                "a naa. name has 16 or 32 hex digits after \"naa.\"",
            ));
        }
        Ok(NameKind::Naa)
    } else {
        Err(NameError::UnknownType {
            name: name.to_string(),
        })
    }
}

/// `YYYY-MM.naming.authority[:unique]` (RFC 7143 §4.2.7.4).
fn check_iqn(rest: &str) -> Result<(), &'static str> {
    let (date, tail) = rest
        .split_at_checked(7)
        .ok_or("an iqn. name needs a YYYY-MM date after \"iqn.\"")?;
    if !is_year_month(date) {
        return Err("the date after \"iqn.\" must be YYYY-MM with a month from 01 to 12");
    }
    let authority_and_unique = tail
        .strip_prefix('.')
        .ok_or("the date must be followed by '.' and the naming authority")?;
    let (authority, unique) = match authority_and_unique.split_once(':') {
        Some((authority, unique)) => (authority, Some(unique)),
        None => (authority_and_unique, None),
    };
    if authority.is_empty() || authority.split('.').any(str::is_empty) {
        return Err("the naming authority (a reversed domain name such as com.example) is empty or has an empty label");
    }
    if unique == Some("") {
        return Err("nothing follows the ':'");
    }
    Ok(())
}

fn is_year_month(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!((b[5], b[6]), (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2'))
}

/// Lowercases ASCII letters (the part of RFC 3722 case folding lunlink supports), then
/// validates. For names typed by people, e.g. `EUI.02004567A425678D`.
pub fn normalize_name(name: &str) -> Result<String, NameError> {
    let lower = name.to_ascii_lowercase();
    validate_name(&lower)?;
    Ok(lower)
}

/// `iqn.<YYYY-MM>.org.lunlink:<12 hex digits>` from the caller's date (`YYYY-MM`) and six
/// random bytes.
pub fn generate_name(year_month: &str, random: [u8; 6]) -> Result<String, NameError> {
    if !is_year_month(year_month) {
        return Err(NameError::BadDate {
            date: year_month.to_string(),
        });
    }
    let mut name = format!("iqn.{year_month}.org.lunlink:");
    for b in random {
        // Writing to a String cannot fail.
        let _ = write!(name, "{b:02x}");
    }
    Ok(name)
}

/// Where the initiator name in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// `[initiator] name` in the config file.
    Config,
    /// Generated earlier and read from the state directory.
    Stored,
    /// Generated now and saved in the state directory.
    Generated,
}

/// The initiator name in use and where it came from (worth a log line at startup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiatorName {
    pub name: String,
    pub source: NameSource,
}

/// Picks the initiator name: the configured one, else the stored one, else a new one made from
/// `year_month` and `random` and saved atomically (0644, in a 0700 state dir) before it is
/// used, so a restart always finds the same name. A stored name that is not valid is an error,
/// not a reason to make a new one: targets' ACLs may list it.
pub fn load_or_generate(
    state_dir: &Path,
    configured: Option<&str>,
    year_month: &str,
    random: [u8; 6],
) -> Result<InitiatorName, NameError> {
    if let Some(name) = configured {
        return Ok(InitiatorName {
            name: normalize_name(name)?,
            source: NameSource::Config,
        });
    }
    let path = state_dir.join(NAME_FILE);
    if let Some(name) = read_stored(&path)? {
        return Ok(InitiatorName {
            name,
            source: NameSource::Stored,
        });
    }
    let name = generate_name(year_month, random)?;
    let io_err = |action| {
        move |source| NameError::Io {
            action,
            path: state_dir.to_path_buf(),
            source,
        }
    };
    ensure_private_dir(state_dir).map_err(io_err("create"))?;
    let contents = format!("{name}\n");
    match write_file_atomic(&path, contents.as_bytes(), 0o644, false).map_err(|source| {
        NameError::Io {
            action: "write",
            path: path.clone(),
            source,
        }
    })? {
        Written::Written => Ok(InitiatorName {
            name,
            source: NameSource::Generated,
        }),
        // Another process won the race: its name is the one to keep.
        Written::AlreadyExists => match read_stored(&path)? {
            Some(name) => Ok(InitiatorName {
                name,
                source: NameSource::Stored,
            }),
            None => Err(NameError::BadStoredName {
                path,
                reason: "the file vanished while being read".into(),
            }),
        },
    }
}

/// The stored name, `None` when there is no file yet. Blank lines and `#` comments are
/// allowed so an admin may annotate the file.
fn read_stored(path: &Path) -> Result<Option<String>, NameError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NameError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let bad = |reason: String| NameError::BadStoredName {
        path: path.to_path_buf(),
        reason,
    };
    let name = lines
        .next()
        .ok_or_else(|| bad("the file holds no name".into()))?;
    if lines.next().is_some() {
        return Err(bad("the file holds more than one line of text".into()));
    }
    validate_name(name).map_err(|e| bad(e.to_string()))?;
    Ok(Some(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn valid_names() {
        for (name, kind) in [
            // RFC 7143 §4.2.7.4 examples.
            ("iqn.2001-04.com.example", NameKind::Iqn),
            (
                "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
                NameKind::Iqn,
            ),
            (
                "iqn.2001-04.com.example:storage.tape1.sys1.xyz",
                NameKind::Iqn,
            ),
            ("iqn.2024-01.test:disk", NameKind::Iqn),
            ("eui.02004567a425678d", NameKind::Eui),
            ("naa.52004567ba64678d", NameKind::Naa),
            ("naa.62004567ba64678d0123456789abcdef", NameKind::Naa),
        ] {
            assert_eq!(validate_name(name).unwrap(), kind, "{name}");
        }
        let longest = format!(
            "iqn.2024-01.org.example:{}",
            "a".repeat(MAX_NAME_BYTES - 24)
        );
        assert_eq!(longest.len(), MAX_NAME_BYTES);
        assert!(validate_name(&longest).is_ok());
    }

    #[test]
    fn invalid_names() {
        let too_long = format!(
            "iqn.2024-01.org.example:{}",
            "a".repeat(MAX_NAME_BYTES - 23)
        );
        for name in [
            "",
            "iqn",
            "iqn.",
            "iqn.2024-1.org.example",
            "iqn.2024-00.org.example",
            "iqn.2024-13.org.example",
            "iqn.24-01.org.example",
            "iqn.2024-01",
            "iqn.2024-01.",
            "iqn.2024-01.:x",
            "iqn.2024-01..example:x",
            "iqn.2024-01.org.example:",
            "iqn.2024-01org.example",
            "IQN.2024-01.org.example",
            "iqn.2024-01.org.example:Disk",
            "iqn.2024-01.org.example:disk 1",
            "iqn.2024-01.org.example:disk/1",
            "iqn.2024-01.org.exämple",
            "eui.02004567a425678",
            "eui.02004567a425678d0",
            "eui.02004567a425678g",
            "naa.52004567ba64678d01",
            "xyz.2024-01.org.example",
            too_long.as_str(),
        ] {
            assert!(validate_name(name).is_err(), "{name:?} should be refused");
        }
        assert!(matches!(
            validate_name(&too_long),
            Err(NameError::TooLong { len: 224, .. })
        ));
        let e = validate_name("iqn.2024-01.org.example:Disk")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'D'") && e.contains("lowercase"), "{e}");
    }

    #[test]
    fn normalize_lowercases() {
        // RFC 7143 §4.2.7.5/6 print their examples in uppercase hex.
        assert_eq!(
            normalize_name("eui.02004567A425678D").unwrap(),
            "eui.02004567a425678d"
        );
        assert_eq!(
            normalize_name("IQN.2001-04.COM.Example:X").unwrap(),
            "iqn.2001-04.com.example:x"
        );
        assert!(normalize_name("iqn.2001-04.com.example:a_b").is_err());
    }

    #[test]
    fn generated_name_shape() {
        let name = generate_name("2026-11", [0x00, 0x1f, 0xa0, 0xff, 0x42, 0x07]).unwrap();
        assert_eq!(name, "iqn.2026-11.org.lunlink:001fa0ff4207");
        assert_eq!(validate_name(&name).unwrap(), NameKind::Iqn);
        assert!(matches!(
            generate_name("2026-1", [0; 6]),
            Err(NameError::BadDate { .. })
        ));
        assert!(matches!(
            generate_name("2026-13", [0; 6]),
            Err(NameError::BadDate { .. })
        ));
    }

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = load_or_generate(&state, None, "2026-11", [1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(
            first,
            InitiatorName {
                name: "iqn.2026-11.org.lunlink:010203040506".into(),
                source: NameSource::Generated
            }
        );
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A later start with another date and other random bytes keeps the first name.
        let again = load_or_generate(&state, None, "2027-02", [9; 6]).unwrap();
        assert_eq!(
            again,
            InitiatorName {
                name: first.name.clone(),
                source: NameSource::Stored
            }
        );
        assert_eq!(
            std::fs::read_to_string(state.join(NAME_FILE)).unwrap(),
            format!("{}\n", first.name)
        );
        // The config wins, and does not overwrite the stored name.
        let configured = load_or_generate(
            &state,
            Some("IQN.2020-01.com.example:h1"),
            "2027-02",
            [9; 6],
        )
        .unwrap();
        assert_eq!(
            configured,
            InitiatorName {
                name: "iqn.2020-01.com.example:h1".into(),
                source: NameSource::Config
            }
        );
        assert_eq!(
            load_or_generate(&state, None, "2027-02", [9; 6])
                .unwrap()
                .name,
            first.name
        );
    }

    #[test]
    fn stored_file_may_carry_comments_but_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME_FILE);
        std::fs::write(&path, "# this host\n\n  iqn.2020-01.com.example:h1  \n").unwrap();
        assert_eq!(
            load_or_generate(dir.path(), None, "2026-11", [0; 6])
                .unwrap()
                .name,
            "iqn.2020-01.com.example:h1"
        );
        std::fs::write(&path, "InitiatorName=iqn.2020-01.com.example:h1\n").unwrap();
        let e = load_or_generate(dir.path(), None, "2026-11", [0; 6]).unwrap_err();
        assert!(matches!(e, NameError::BadStoredName { .. }), "{e:?}");
        assert!(e.to_string().contains(NAME_FILE), "{e}");
        // The bad file is left alone.
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("InitiatorName="));
        std::fs::write(&path, "\n").unwrap();
        assert!(load_or_generate(dir.path(), None, "2026-11", [0; 6]).is_err());
    }
}
