//! `lunlinkctl session show SESSION|TARGET`: one session with its negotiated parameters;
//! `lunlinkctl session rescan SESSION|TARGET`: bring its LUNs in line with REPORT LUNS.

use super::Ctx;
use crate::model::{param_text, SessionInfo, Snapshot};
use crate::output::{format_size, write_stdout, Fields};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Show a session: state, ids, counters, LUNs and negotiated parameters.
    Show(Show),
    /// Ask the target for its LUNs again: new ones get devices, vanished ones go (or are
    /// marked offline while their device is in use).
    Rescan(Show),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Show {
    /// A session object path, the id shown by 'lunlinkctl sessions', or a target name.
    #[arg(value_name = "SESSION|TARGET")]
    pub session: String,

    /// The portal, when the target has sessions through several.
    #[arg(long, value_name = "PORTAL")]
    pub portal: Option<String>,
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let (args, rescan) = match cmd {
        Cmd::Show(a) => (a, false),
        Cmd::Rescan(a) => (a, true),
    };
    let snap = ctx.snapshot().await?;
    let s = snap.find_session(&args.session, args.portal.as_deref())?;
    if rescan {
        use anyhow::Context as _;
        ctx.act::<_, ()>(&s.path, lunlink_dbus::SESSION_INTERFACE, "Rescan", &())
            .await
            .with_context(|| format!("rescan of {} failed", s.target))?;
        return Ok(());
    }
    if ctx.out.json {
        return ctx.out.json(s);
    }
    write_stdout(&render(&snap, s))
}

pub fn render(snap: &Snapshot, s: &SessionInfo) -> String {
    let luns: Vec<String> = s
        .luns
        .iter()
        .map(|p| match snap.lun_at(p) {
            Some(l) => {
                let dev = if l.device.is_empty() {
                    format!("no device: {}", l.device_error)
                } else {
                    l.device.clone()
                };
                format!(
                    "{} {} ({}, {} {})",
                    l.lun,
                    dev,
                    format_size(l.size),
                    l.vendor,
                    l.product
                )
            }
            None => p.clone(),
        })
        .collect();
    let params: Vec<String> = s
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={}", param_text(v)))
        .collect();
    let mut f = Fields::new();
    f.add("Session", s.path.clone())
        .add("Target", s.target.clone())
        .add("Portal", s.portal.clone())
        .add("Node", s.node.clone().unwrap_or_default())
        .add("State", s.state.clone())
        .add("ISID", s.isid.clone())
        .add("TSIH", s.tsih.to_string())
        .add("Commands", s.commands.to_string())
        .add("Read", format_size(s.bytes_read))
        .add("Written", format_size(s.bytes_written))
        .add("Errors", s.errors.to_string())
        .add("Retries", s.retries.to_string())
        .add("Attentions", s.unit_attentions.to_string())
        .lines("LUNs", luns)
        .lines("Parameters", params);
    f.render()
}

#[cfg(test)]
mod tests {
    use crate::model::tests::sample;

    #[test]
    fn show_has_luns_counters_and_parameters() {
        let snap = sample();
        let s = snap.find_session("5", None).expect("session");
        let text = super::render(&snap, s);
        assert!(
            text.contains("      LUNs: 0 /dev/ublkb0 (10.0 GiB, LIO-ORG disk)\n"),
            "{text}"
        );
        assert!(text.contains("      Read: 4.0 KiB\n"), "{text}");
        assert!(
            text.contains("Parameters: HeaderDigest=CRC32C\n            MaxBurstLength=262144\n"),
            "{text}"
        );
        assert!(text.contains("      Node: -\n"), "{text}");
    }
}
