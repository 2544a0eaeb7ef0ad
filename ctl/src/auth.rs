//! CHAP credentials for a verb: from an auth file, stdin or a terminal prompt, never argv
//! (argv is readable by every user through /proc).

use std::fmt;
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lunlink_dbus::values::{AuthMethod, ChapAlgorithm};
use lunlink_dbus::Options;

use crate::exit::CtlError;

/// Largest auth file read: a few short lines; more means the wrong file was given.
const MAX_AUTH_FILE: u64 = 64 * 1024;

const KEYS: [&str; 4] = [
    "username",
    "password",
    "reverse-username",
    "reverse-password",
];

/// The credential options of verbs that log in or store CHAP settings.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// Read CHAP credentials from FILE, or stdin for "-". Lines: username=NAME, password=SECRET,
    /// reverse-username=NAME, reverse-password=SECRET (mutual CHAP); '#' starts a comment.
    /// Keep the file mode 0600.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,

    /// Ask for the CHAP password on the terminal, without echo (and for the username when no
    /// auth file gives one).
    #[arg(long)]
    pub password_prompt: bool,

    /// Authentication method: none or chap (a username implies chap).
    #[arg(long, value_name = "none|chap")]
    pub auth_method: Option<AuthMethod>,

    /// CHAP algorithms to offer, most preferred first: md5, sha1, sha256, sha3-256.
    #[arg(long, value_name = "ALG,...", value_delimiter = ',')]
    pub chap_algorithms: Option<Vec<ChapAlgorithm>>,
}

impl AuthArgs {
    /// Add the credentials and CHAP settings these arguments ask for to `opts`; reads the auth
    /// file and prompts as needed.
    pub fn apply(&self, mut opts: Options) -> anyhow::Result<Options> {
        let mut creds = match &self.auth_file {
            None => Credentials::default(),
            Some(p) if p.as_os_str() == "-" => {
                let text = read_limited(std::io::stdin().lock(), "standard input")?;
                parse_auth(&text, "standard input")?
            }
            Some(p) => read_auth_file(p)?,
        };
        if self.password_prompt {
            if creds.password.is_some() {
                return Err(CtlError::Invalid(
                    "--password-prompt: the auth file already gives a password".into(),
                )
                .into());
            }
            let user = match creds.username.take() {
                Some(u) => u,
                None => prompt_line("CHAP username: ")?,
            };
            if user.is_empty() {
                return Err(CtlError::Invalid("empty CHAP username".into()).into());
            }
            let pass = rpassword::prompt_password(format!("CHAP password for {user}: "))
                .context("cannot ask for the password (no terminal? use --auth-file)")?;
            if pass.is_empty() {
                return Err(CtlError::Invalid("empty CHAP password".into()).into());
            }
            creds.username = Some(user);
            creds.password = Some(pass);
        }
        if let Some(u) = creds.username {
            opts = opts.username(u);
        }
        if let Some(p) = creds.password {
            opts = opts.password(p);
        }
        if let Some(u) = creds.reverse_username {
            opts = opts.reverse_username(u);
        }
        if let Some(p) = creds.reverse_password {
            opts = opts.reverse_password(p);
        }
        if let Some(m) = self.auth_method {
            opts = opts.auth_method(m);
        }
        if let Some(a) = &self.chap_algorithms {
            opts = opts.chap_algorithms(a.clone());
        }
        Ok(opts)
    }

    /// True when none of these options was given.
    pub fn is_empty(&self) -> bool {
        self.auth_file.is_none()
            && !self.password_prompt
            && self.auth_method.is_none()
            && self.chap_algorithms.is_none()
    }
}

/// CHAP names and secrets read from an auth file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username=`.
    pub username: Option<String>,
    /// `password=`.
    pub password: Option<String>,
    /// `reverse-username=`.
    pub reverse_username: Option<String>,
    /// `reverse-password=`.
    pub reverse_password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("reverse_username", &self.reverse_username)
            .field("reverse_password", &redact(&self.reverse_password))
            .finish()
    }
}

/// Parse auth file text: `key=value` lines, blank lines and `#` comments. Keys and values are
/// trimmed of surrounding blanks. Messages name the line and key, never the value: it may be
/// a secret.
pub fn parse_auth(text: &str, source: &str) -> Result<Credentials, CtlError> {
    let mut c = Credentials::default();
    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(CtlError::Invalid(format!(
                "{source} line {lineno}: expected key=value"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let slot = match key {
            "username" => &mut c.username,
            "password" => &mut c.password,
            "reverse-username" => &mut c.reverse_username,
            "reverse-password" => &mut c.reverse_password,
            other => {
                return Err(CtlError::Invalid(format!(
                    "{source} line {lineno}: unknown key '{}' (expected {})",
                    other.escape_debug(),
                    KEYS.join(", ")
                )))
            }
        };
        if value.is_empty() {
            return Err(CtlError::Invalid(format!(
                "{source} line {lineno}: empty value for '{key}'"
            )));
        }
        if slot.is_some() {
            return Err(CtlError::Invalid(format!(
                "{source} line {lineno}: '{key}' given twice"
            )));
        }
        *slot = Some(value.to_owned());
    }
    for (secret, name, secret_key, name_key) in [
        (&c.password, &c.username, "password", "username"),
        (
            &c.reverse_password,
            &c.reverse_username,
            "reverse-password",
            "reverse-username",
        ),
    ] {
        if secret.is_some() && name.is_none() {
            return Err(CtlError::Invalid(format!(
                "{source}: '{secret_key}' needs '{name_key}'"
            )));
        }
    }
    if c.reverse_username.is_some() && c.username.is_none() {
        return Err(CtlError::Invalid(format!(
            "{source}: mutual CHAP ('reverse-username') needs 'username' too"
        )));
    }
    Ok(c)
}

/// Read and parse an auth file, warning when group or others may read it.
fn read_auth_file(path: &Path) -> anyhow::Result<Credentials> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| CtlError::Invalid(format!("cannot open auth file {shown}: {e}")))?;
    if let Ok(meta) = file.metadata() {
        if let Some(w) = permission_warning(&shown, meta.permissions().mode()) {
            eprintln!("lunlinkctl: warning: {w}");
        }
    }
    let text = read_limited(file, &shown)?;
    Ok(parse_auth(&text, &shown)?)
}

/// The warning for an auth file whose mode lets group or others in, if any.
pub fn permission_warning(shown: &str, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "auth file {shown} is accessible by group or others (mode {:04o}); \
             run 'chmod 600 {shown}'",
            mode & 0o7777
        )
    })
}

fn read_limited(r: impl std::io::Read, shown: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    r.take(MAX_AUTH_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| CtlError::Invalid(format!("cannot read auth file {shown}: {e}")))?;
    if text.len() as u64 > MAX_AUTH_FILE {
        return Err(CtlError::Invalid(format!(
            "auth file {shown} is larger than {MAX_AUTH_FILE} bytes; is it the right file?"
        ))
        .into());
    }
    Ok(text)
}

/// Ask for one line on the controlling terminal (echoed: used for names, not secrets).
fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("cannot ask for the username (no terminal? use --auth-file)")?;
    let mut w = &tty;
    w.write_all(prompt.as_bytes())?;
    w.flush()?;
    let mut line = String::new();
    std::io::BufReader::new(&tty).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse_auth(text, "auth.conf") {
            Err(e) => e.to_string(),
            Ok(c) => panic!("expected an error, got {c:?}"),
        }
    }

    #[test]
    fn parses_all_keys_comments_and_blanks() {
        let text = "# credentials for disk1\n\
                    username = iqn.2026-01.org.lunlink:host1\n\
                    password=s3cret-with=equals \n\
                    \n\
                    reverse-username=target1\r\n\
                    reverse-password=0x0123456789abcdef\n";
        let c = parse_auth(text, "auth.conf").expect("valid");
        assert_eq!(c.username.as_deref(), Some("iqn.2026-01.org.lunlink:host1"));
        assert_eq!(c.password.as_deref(), Some("s3cret-with=equals"));
        assert_eq!(c.reverse_username.as_deref(), Some("target1"));
        assert_eq!(c.reverse_password.as_deref(), Some("0x0123456789abcdef"));
        assert_eq!(parse_auth("", "x").ok(), Some(Credentials::default()));
    }

    #[test]
    fn refuses_bad_lines_without_echoing_values() {
        assert_eq!(
            err("username=u\nhunter2\n"),
            "auth.conf line 2: expected key=value"
        );
        let m = err("user=hunter2\n");
        assert!(m.starts_with("auth.conf line 1: unknown key 'user'"), "{m}");
        assert!(!m.contains("hunter2"));
        assert_eq!(
            err("username=a\nusername=b\n"),
            "auth.conf line 2: 'username' given twice"
        );
        assert_eq!(
            err("username=\n"),
            "auth.conf line 1: empty value for 'username'"
        );
        assert_eq!(
            err("password=hunter2\n"),
            "auth.conf: 'password' needs 'username'"
        );
        assert_eq!(
            err("username=u\npassword=p\nreverse-password=q\n"),
            "auth.conf: 'reverse-password' needs 'reverse-username'"
        );
        assert!(err("reverse-username=t\nreverse-password=q\n").contains("needs 'username'"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = parse_auth("username=u\npassword=hunter2\n", "x").expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn warns_on_group_or_world_access_only() {
        assert_eq!(permission_warning("f", 0o100600), None);
        assert_eq!(permission_warning("f", 0o100400), None);
        let w = permission_warning("/etc/x", 0o100644).expect("warning");
        assert!(
            w.contains("mode 0644") && w.contains("chmod 600 /etc/x"),
            "{w}"
        );
        assert!(permission_warning("f", 0o100620).is_some());
    }

    #[test]
    fn reads_a_file_and_builds_options() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auth");
        std::fs::write(&path, "username=u1\npassword=p1\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let args = AuthArgs {
            auth_file: Some(path),
            chap_algorithms: Some(vec![ChapAlgorithm::Sha256]),
            ..AuthArgs::default()
        };
        let o = args.apply(Options::new()).expect("apply");
        assert_eq!(o.username.as_deref(), Some("u1"));
        assert_eq!(o.password.as_deref(), Some("p1"));
        assert_eq!(o.chap_algorithms, Some(vec![ChapAlgorithm::Sha256]));
        assert_eq!(o.auth_method, None);

        let missing = AuthArgs {
            auth_file: Some(dir.path().join("nope")),
            ..AuthArgs::default()
        };
        let e = missing.apply(Options::new()).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("cannot open auth file"),
            "{e:#}"
        );
        assert_eq!(crate::exit::code_for(&e), crate::exit::INVALID);
    }

    #[test]
    fn refuses_oversized_files() {
        let big = "#".repeat(70 * 1024);
        let e = read_limited(big.as_bytes(), "big").unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
