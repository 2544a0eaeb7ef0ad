//! lunlinkctl(8) and the bash, zsh and fish completions, made from the clap definition when
//! the package is built (`lunlinkctl --generate-docs DIR`, run by scripts/package), so they
//! never drift from `--help`. The flag is taken before clap parses anything: it is no option
//! of the tool, and neither the man page nor the completions show it.

use std::io::{self, Write as _};
use std::path::Path;

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::Cli;

/// The hidden first argument that makes lunlinkctl write its documentation.
pub const FLAG: &str = "--generate-docs";

const EXAMPLES: &str = r#".SH EXAMPLES
.nf
lunlinkctl discover 192.0.2.10
lunlinkctl login iqn.2024\-01.com.example:disk1
lunlinkctl luns
lunlinkctl node update iqn.2024\-01.com.example:disk1 \-\-startup automatic
lunlinkctl logout \-\-all
lunlinkctl \-\-json sessions
.fi
.PP
A file system on a LUN that is mounted at boot, in /etc/fstab:
.PP
.nf
/dev/disk/by\-path/ip\-192.0.2.10:3260\-iscsi\-iqn.2024\-01.com.example:disk1\-lun\-1\-part1 \e
    /srv/data ext4 _netdev,nofail 0 2
.fi
.PP
with the node's startup set to \fBautomatic\fR, so that lunlinkd logs in at boot.
.SH FILES
.TP
\fI/var/lib/lunlink/nodes/\fR
node records kept by lunlinkd, one file per target, portal and TPGT (mode 0600)
.TP
\fI/etc/lunlink/lunlink.toml\fR
lunlinkd's configuration, see \fBlunlink.toml\fR(5)
.SH SEE ALSO
\fBlunlinkd\fR(8), \fBlunlink.toml\fR(5), \fBiscsiadm\fR(8)
"#;

/// Writes `man8/lunlinkctl.8` and `completions/{lunlinkctl.bash,_lunlinkctl,lunlinkctl.fish}`
/// under `dir`.
pub fn generate(dir: &Path) -> io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let man_dir = dir.join("man8");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::write(man_dir.join("lunlinkctl.8"), man_page(&cmd)?)?;

    let comp_dir = dir.join("completions");
    std::fs::create_dir_all(&comp_dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut c = cmd.clone();
        clap_complete::generate_to(shell, &mut c, "lunlinkctl", &comp_dir)?;
    }
    Ok(())
}

fn man_page(cmd: &clap::Command) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("lunlink")
        .source(format!("lunlink {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands() {
        commands(&mut out, "lunlinkctl", sub)?;
    }
    man.render_extra_section(&mut out)?;
    out.extend_from_slice(EXAMPLES.as_bytes());
    Ok(out)
}

/// One `.SS` per command that does something (`node update`, not `node`), with its arguments.
fn commands(out: &mut Vec<u8>, parent: &str, cmd: &clap::Command) -> io::Result<()> {
    if cmd.is_hide_set() || cmd.get_name() == "help" {
        return Ok(());
    }
    let name = format!("{parent} {}", cmd.get_name());
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            commands(out, &name, sub)?;
        }
        return Ok(());
    }
    let mut positionals = String::new();
    let mut args = Vec::new();
    for a in cmd.get_arguments() {
        if a.is_hide_set() || a.is_global_set() || matches!(a.get_id().as_str(), "help" | "version") {
            continue;
        }
        let values = a
            .get_value_names()
            .map(|v| v.iter().map(|n| format!("<{n}>")).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| format!("<{}>", a.get_id().as_str().to_uppercase()));
        let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
        let head = match (a.get_long(), a.get_short()) {
            (Some(l), Some(s)) => format!("-{s}, --{l}"),
            (Some(l), None) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            (None, None) => values.clone(),
        };
        let head = if a.is_positional() || !takes_value { head } else { format!("{head} {values}") };
        if a.is_positional() {
            positionals.push_str(&if a.is_required_set() { format!(" {values}") } else { format!(" [{values}]") });
        }
        let help = a.get_long_help().or_else(|| a.get_help()).map(ToString::to_string).unwrap_or_default();
        let possible: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_owned())
            .collect();
        let help = if possible.is_empty() || !takes_value {
            help
        } else {
            format!("{help} [one of: {}]", possible.join(", "))
        };
        args.push((head, help));
    }
    let options = if args.iter().any(|(h, _)| h.starts_with('-')) { " [OPTIONS]" } else { "" };
    let synopsis = format!("{name}{options}{positionals}");
    writeln!(out, ".SS \"{}\"", escape(&synopsis))?;
    let about = cmd.get_long_about().or_else(|| cmd.get_about()).map(ToString::to_string).unwrap_or_default();
    writeln!(out, "{}", escape(&about))?;
    for (head, help) in args {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(&head), escape(&help))?;
    }
    Ok(())
}

/// Text for roff: backslashes and minus signs escaped, no line starting with a control
/// character, blank lines as paragraph breaks.
fn escape(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.trim().is_empty() {
                ".PP".to_owned()
            } else if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_and_completions_cover_every_verb() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path()).expect("generate");
        let man = std::fs::read_to_string(dir.path().join("man8/lunlinkctl.8")).expect("man page");
        assert!(man.starts_with(".ie") || man.contains(".TH lunlinkctl 8"), "{man}");
        for verb in ["lunlinkctl login", "lunlinkctl node update", "lunlinkctl session rescan", "lunlinkctl discover"] {
            assert!(man.contains(&format!(".SS \"{}", verb.replace('-', "\\-"))), "{verb} missing in\n{man}");
        }
        assert!(man.contains("Exit status"), "{man}");
        assert!(!man.contains(FLAG), "the generator flag must stay hidden");
        let bash = std::fs::read_to_string(dir.path().join("completions/lunlinkctl.bash")).expect("bash");
        assert!(bash.contains("_lunlinkctl()") && bash.contains("set-default-auth"), "{bash}");
        assert!(dir.path().join("completions/_lunlinkctl").is_file());
        assert!(dir.path().join("completions/lunlinkctl.fish").is_file());
    }

    #[test]
    fn roff_escaping() {
        assert_eq!(escape(".hidden\n\nx-y a\\b"), "\\&.hidden\n.PP\nx\\-y a\\eb");
    }
}
