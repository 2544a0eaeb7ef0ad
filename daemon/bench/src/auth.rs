//! CHAP credentials from an auth file (never from argv): the `key=value` format lunlinkctl
//! reads, with the keys `username`, `password`, `reverse-username`, `reverse-password`; blank
//! lines and `#` comments are ignored. Messages name the line and key, never a value.

use std::path::Path;

use lunlink_engine::{Auth, ChapAlgorithm, ChapConfig, Secret};

use crate::error::BenchError;

/// Largest auth file read: a few short lines; more means the wrong file was given.
const MAX_LEN: u64 = 64 * 1024;

pub fn parse(text: &str, path: &Path) -> Result<Auth, BenchError> {
    let bad = |reason: String| BenchError::AuthFile { path: path.to_path_buf(), reason };
    let (mut user, mut pass, mut ruser, mut rpass) = (None, None, None, None);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad(format!("line {}: expected key=value", n + 1)));
        };
        let (key, value) = (key.trim(), value.trim());
        let slot = match key {
            "username" => &mut user,
            "password" => &mut pass,
            "reverse-username" => &mut ruser,
            "reverse-password" => &mut rpass,
            other => {
                return Err(bad(format!(
                    "line {}: unknown key '{}' (expected username, password, reverse-username, reverse-password)",
                    n + 1,
                    other.escape_debug()
                )))
            }
        };
        if value.is_empty() {
            return Err(bad(format!("line {}: empty value for '{key}'", n + 1)));
        }
        if slot.replace(value.to_owned()).is_some() {
            return Err(bad(format!("line {}: '{key}' given twice", n + 1)));
        }
    }
    let (Some(user), Some(pass)) = (user, pass) else {
        return Err(bad("CHAP needs both 'username' and 'password'".into()));
    };
    let mutual = match (ruser, rpass) {
        (None, None) => None,
        (Some(u), Some(p)) => Some((u, Secret::new(p.into_bytes()))),
        _ => return Err(bad("mutual CHAP needs both 'reverse-username' and 'reverse-password'".into())),
    };
    Ok(Auth::Chap(ChapConfig {
        username: user,
        secret: Secret::new(pass.into_bytes()),
        mutual,
        algorithms: vec![ChapAlgorithm::Md5],
    }))
}

pub fn read(path: &Path) -> Result<Auth, BenchError> {
    use std::io::Read as _;
    let bad = |reason: String| BenchError::AuthFile { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mut text = String::new();
    file.take(MAX_LEN + 1).read_to_string(&mut text).map_err(|e| bad(format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_LEN {
        return Err(bad(format!("larger than {MAX_LEN} bytes; is it the right file?")));
    }
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Auth, BenchError> {
        parse(text, Path::new("auth"))
    }

    #[test]
    fn one_way_and_mutual() {
        let Auth::Chap(c) = p("# me\nusername = alice\npassword=alicesecret12\n").unwrap() else { panic!() };
        assert_eq!(c.username, "alice");
        assert!(c.mutual.is_none());
        let Auth::Chap(c) =
            p("username=a\npassword=aaaaaaaaaaaa\nreverse-username=t\nreverse-password=tttttttttttt\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(c.mutual.as_ref().map(|m| m.0.as_str()), Some("t"));
    }

    #[test]
    fn errors_name_the_line_never_the_secret() {
        let e = p("username=a\npassword=topsecret99\npassword=othersecret1\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("twice"), "{e}");
        assert!(!e.contains("topsecret99") && !e.contains("othersecret1"), "{e}");
        let e = p("username=a\n").unwrap_err().to_string();
        assert!(e.contains("password"), "{e}");
        let e = p("user=a\n").unwrap_err().to_string();
        assert!(e.contains("unknown key 'user'"), "{e}");
        let e = p("username=a\npassword=bbbbbbbbbbbb\nreverse-username=t\n").unwrap_err().to_string();
        assert!(e.contains("reverse-password"), "{e}");
    }
}
