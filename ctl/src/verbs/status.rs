//! `lunlinkctl status` (the default verb): the initiator and a count of its objects.

use std::collections::HashMap;

use anyhow::Context as _;
use lunlink_dbus::zvariant::OwnedValue;
use serde::Serialize;

use super::Ctx;
use crate::model::Snapshot;
use crate::output::{write_stdout, Fields};

/// What `status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub initiator_name: String,
    pub version: String,
    pub default_auth_method: String,
    pub default_username: String,
    pub discovery_auth_method: String,
    pub discovery_username: String,
    pub nodes: usize,
    pub automatic_nodes: usize,
    pub sessions: usize,
    pub logged_in_sessions: usize,
    pub luns: usize,
    pub luns_with_device: usize,
    /// "available", or why this host cannot make ublk block devices (checked here, on the
    /// host lunlinkctl runs on; empty when not checked).
    pub block_devices: String,
}

fn prop(p: &HashMap<String, OwnedValue>, key: &str) -> String {
    p.get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_owned()
}

impl Status {
    pub fn new(manager: &HashMap<String, OwnedValue>, snap: &Snapshot) -> Self {
        Status {
            initiator_name: prop(manager, "InitiatorName"),
            version: prop(manager, "Version"),
            default_auth_method: prop(manager, "DefaultAuthMethod"),
            default_username: prop(manager, "DefaultUsername"),
            discovery_auth_method: prop(manager, "DiscoveryAuthMethod"),
            discovery_username: prop(manager, "DiscoveryUsername"),
            nodes: snap.nodes.len(),
            automatic_nodes: snap
                .nodes
                .iter()
                .filter(|n| n.startup == "automatic")
                .count(),
            sessions: snap.sessions.len(),
            logged_in_sessions: snap
                .sessions
                .iter()
                .filter(|s| s.state == "logged-in")
                .count(),
            luns: snap.luns.len(),
            luns_with_device: snap.luns.iter().filter(|l| !l.device.is_empty()).count(),
            block_devices: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let auth = |method: &str, user: &str| {
            if user.is_empty() {
                method.to_owned()
            } else {
                format!("{method} (username {user})")
            }
        };
        let mut f = Fields::new();
        f.add("Initiator name", self.initiator_name.clone())
            .add("Version", self.version.clone())
            .add(
                "Default auth",
                auth(&self.default_auth_method, &self.default_username),
            )
            .add(
                "Discovery auth",
                auth(&self.discovery_auth_method, &self.discovery_username),
            )
            .add(
                "Nodes",
                format!("{} ({} automatic)", self.nodes, self.automatic_nodes),
            )
            .add(
                "Sessions",
                format!("{} ({} logged in)", self.sessions, self.logged_in_sessions),
            )
            .add(
                "LUNs",
                format!("{} ({} with a device)", self.luns, self.luns_with_device),
            );
        if !self.block_devices.is_empty() {
            f.add("Block devices", self.block_devices.clone());
        }
        f.render()
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let manager = ctx
        .manager_properties()
        .await
        .context("cannot read lunlinkd's status")?;
    let snap = ctx.snapshot().await?;
    let mut status = Status::new(&manager, &snap);
    // Checked on this host, where lunlinkd runs too (the bus is local).
    status.block_devices =
        crate::ublk_check::why_unavailable().unwrap_or_else(|| "available".to_owned());
    if ctx.out.json {
        return ctx.out.json(&status);
    }
    write_stdout(&status.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;
    use lunlink_dbus::zvariant::Str;

    #[test]
    fn counts_and_text() {
        let sv = |s: &str| OwnedValue::from(Str::from(s.to_owned()));
        let manager = HashMap::from([
            (
                "InitiatorName".to_owned(),
                sv("iqn.2026-01.org.lunlink:host1"),
            ),
            ("Version".to_owned(), sv("0.1.0")),
            ("DefaultAuthMethod".to_owned(), sv("chap")),
            ("DefaultUsername".to_owned(), sv("host1")),
            ("DiscoveryAuthMethod".to_owned(), sv("none")),
        ]);
        let st = Status::new(&manager, &sample());
        assert_eq!(
            (st.nodes, st.sessions, st.logged_in_sessions, st.luns),
            (3, 1, 1, 1)
        );
        assert_eq!(st.discovery_username, "");
        let expected = "\
Initiator name: iqn.2026-01.org.lunlink:host1
       Version: 0.1.0
  Default auth: chap (username host1)
Discovery auth: none
         Nodes: 3 (0 automatic)
      Sessions: 1 (1 logged in)
          LUNs: 1 (1 with a device)
";
        assert_eq!(st.render(), expected);
        let json = serde_json::to_value(&st).expect("json");
        assert_eq!(json["initiator_name"], "iqn.2026-01.org.lunlink:host1");
        assert_eq!(json["logged_in_sessions"], 1);
    }
}
