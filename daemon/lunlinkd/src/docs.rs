//! lunlinkd(8) and lunlink.toml(5), made when the package is built (`lunlinkd
//! --generate-docs DIR`, run by scripts/package): the options come from the clap definition,
//! the configuration keys, defaults and explanations from config/lunlink.toml, the commented
//! reference the package also ships, so neither page drifts from what the daemon accepts.
//! The flag is taken before clap parses anything: it is no option of the daemon.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use clap::CommandFactory as _;

/// The hidden first argument that makes lunlinkd write its man pages.
pub const FLAG: &str = "--generate-docs";

/// The commented reference configuration, every key with its default.
const CONFIG: &str = include_str!("../../../config/lunlink.toml");

const DAEMON_PROSE: &str = r#".SH DESCRIPTION
\fBlunlinkd\fR is an iSCSI initiator (RFC 7143) that runs in user space. It logs in to iSCSI
targets and exposes each disk LUN as a block device \fI/dev/ublkbN\fR through the kernel's
ublk driver, so the kernel needs no SCSI or iSCSI support. It is driven over D\-Bus: it owns
\fBorg.lunlink.Initiator1\fR on the system bus, where \fBlunlinkctl\fR(8) and other clients find
it. Nodes whose startup is \fBautomatic\fR are logged in at start, and logged in again with
backoff until their target answers.
.PP
It is normally started by systemd (\fIlunlinkd.service\fR, Type=notify; the bus activates it
too). When it stops it logs out of every session; when it is killed, its block devices stay
and their I/O waits in the kernel until a new lunlinkd re-attaches them (ublk user recovery).
.PP
The kernel needs the ublk driver: \fBmodprobe ublk_drv\fR, or a kernel built with
CONFIG_BLK_DEV_UBLK (on Debian 12: a 6.12 kernel such as linux\-image\-6.12.*+deb12\-amd64
from bookworm\-security; Debian 12's 6.1 kernels have no ublk).
"#;

const DAEMON_TAIL: &str = r#".SH FILES
.TP
\fI/etc/lunlink/lunlink.toml\fR
configuration (optional: without it the built\-in defaults apply), see \fBlunlink.toml\fR(5)
.TP
\fI/var/lib/lunlink/\fR
state: the generated initiator name, node records (\fInodes/\fR), default CHAP credentials
(\fIdefault\-auth.toml\fR); mode 0700
.TP
\fI/run/lunlink/devices/\fR
the identity of each block device, read by udev for the \fI/dev/disk/by\-path\fR and
\fI/dev/disk/by\-id\fR names
.TP
\fI/run/ublksrvd/\fR
libublk's record of each device, used to re\-attach devices after a restart
.SH SIGNALS
SIGTERM and SIGINT log out of every session and stop the daemon.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
log filter (default \fBinfo\fR), e.g. \fBlunlinkd=debug\fR
.SH SEE ALSO
\fBlunlinkctl\fR(8), \fBlunlink.toml\fR(5), \fBsystemd.exec\fR(5)
"#;

const CONFIG_HEAD: &str = r#".SH DESCRIPTION
\fBlunlinkd\fR(8) reads its configuration from \fI/etc/lunlink/lunlink.toml\fR (another path:
\fBlunlinkd \-\-config\fR \fIPATH\fR), a TOML file. Every setting is optional: without the
file, or without a key, the built\-in default below applies. Unknown keys and out\-of\-range
values stop the daemon with the file, line and key named. Durations are in seconds.
.PP
Node records (\fBlunlinkctl node\fR) override the \fB[auth.session]\fR, \fB[timeouts]\fR and
\fB[negotiation]\fR settings for their own target. A commented copy of this file, every key
with its default, is \fI/usr/share/doc/lunlink/examples/lunlink.toml\fR.
"#;

const CONFIG_TAIL: &str = r#".SH EXAMPLE
.nf
[initiator]
name = "iqn.2025\-01.com.example:host1"

[auth.session]
method = "chap"
username = "host1"
password_file = "session.secret"

[timeouts]
replacement = 30
.fi
.SH SEE ALSO
\fBlunlinkd\fR(8), \fBlunlinkctl\fR(8)
"#;

/// Writes `man8/lunlinkd.8` and `man5/lunlink.toml.5` under `dir`.
pub fn generate(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir.join("man8"))?;
    std::fs::create_dir_all(dir.join("man5"))?;
    std::fs::write(dir.join("man8/lunlinkd.8"), daemon_page()?)?;
    std::fs::write(dir.join("man5/lunlink.toml.5"), config_page())?;
    Ok(())
}

fn source() -> String {
    format!("lunlink {}", env!("CARGO_PKG_VERSION"))
}

fn daemon_page() -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(crate::Args::command()).section("8").manual("lunlink").source(source());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    out.extend_from_slice(DAEMON_PROSE.as_bytes());
    man.render_options_section(&mut out)?;
    out.extend_from_slice(DAEMON_TAIL.as_bytes());
    Ok(out)
}

/// One group of keys in the reference file: consecutive key lines and the `##` comment above
/// them.
#[derive(Default)]
struct Group {
    keys: Vec<(String, String, bool)>, // key, value, whether the value is the default
    text: Vec<String>,
}

fn config_page() -> String {
    let mut out = format!(
        ".TH LUNLINK.TOML 5 \"\" \"{}\" \"lunlink\"\n.SH NAME\nlunlink.toml \\- configuration of lunlinkd, the lunlink iSCSI initiator\n",
        source()
    );
    out.push_str(CONFIG_HEAD);
    out.push_str(".SH SETTINGS\n");
    let mut group = Group::default();
    let mut in_section = false;
    let flush = |out: &mut String, g: &mut Group| {
        if g.keys.is_empty() {
            if !g.text.is_empty() {
                let _ = writeln!(out, ".PP\n{}", roff(&g.text.join(" ")));
            }
        } else {
            let mut head = Vec::new();
            for (k, v, default) in &g.keys {
                let what = if *default { "default" } else { "example" };
                head.push(format!("\\fB{}\\fR = {} ({what})", roff(k), roff(v)));
            }
            let _ = writeln!(out, ".TP\n{}\n{}", head.join("\n.TQ\n"), roff(&g.text.join(" ")));
        }
        *g = Group::default();
    };
    for line in CONFIG.lines() {
        let line = line.trim_end();
        if let Some(section) = line.strip_prefix('[') {
            // The comment just above a section header introduces that section.
            let intro = if group.keys.is_empty() { std::mem::take(&mut group.text) } else { Vec::new() };
            flush(&mut out, &mut group);
            in_section = true;
            let _ = writeln!(out, ".SS [{}]", roff(section.trim_end_matches(']')));
            if !intro.is_empty() {
                let _ = writeln!(out, "{}", roff(&intro.join(" ")));
            }
            continue;
        }
        if !in_section {
            continue; // the file's own preamble; CONFIG_HEAD says the same for the man page
        }
        let (comment, rest) = match line.strip_prefix("##") {
            Some(r) => (true, r.trim()),
            None => (false, line.strip_prefix('#').unwrap_or(line).trim()),
        };
        if rest.is_empty() {
            flush(&mut out, &mut group);
            continue;
        }
        match key_line(rest) {
            Some((k, v)) => group.keys.push((k.to_owned(), v.to_owned(), !comment)),
            None => {
                if !group.keys.is_empty() {
                    flush(&mut out, &mut group);
                }
                group.text.push(rest.to_owned());
            }
        }
    }
    flush(&mut out, &mut group);
    out.push_str(CONFIG_TAIL);
    out
}

/// `key = value` with a bare TOML key.
fn key_line(s: &str) -> Option<(&str, &str)> {
    let (k, v) = s.split_once(" = ")?;
    k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_').then_some((k, v))
}

fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_page_names_every_key_with_its_default() {
        let page = config_page();
        for (key, default) in [
            ("queue_depth", "128"),
            ("replacement", "120"),
            ("max_recv_data_segment_length", "262144"),
            ("chap_algorithms", "[\"md5\"]"),
        ] {
            let want = format!("\\fB{}\\fR = {} (default)", roff(key), roff(default));
            assert!(page.contains(&want), "{want} missing in\n{page}");
        }
        for section in ["[initiator]", "[auth.session]", "[auth.discovery]", "[timeouts]", "[negotiation]", "[devices]"] {
            assert!(page.contains(&format!(".SS {}", roff(section))), "{section}");
        }
        assert!(page.contains("\\fBname\\fR = \"iqn.2025\\-01.com.example:host1\" (example)"), "{page}");
        // Every key the reference file shows appears in the page.
        let keys = CONFIG.lines().filter_map(|l| key_line(l.trim_start_matches('#').trim())).count();
        assert_eq!(page.matches("\\fR = ").count(), keys, "{page}");
    }

    #[test]
    fn daemon_page_has_options_and_prose() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path()).expect("generate");
        let page = std::fs::read_to_string(dir.path().join("man8/lunlinkd.8")).expect("page");
        assert!(page.contains("\\-\\-state\\-dir") && page.contains("ublk_drv"), "{page}");
        assert!(!page.contains(FLAG));
    }
}
