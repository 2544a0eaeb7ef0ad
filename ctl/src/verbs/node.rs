//! `lunlinkctl node show|create|update|delete`: one node's settings.

use anyhow::Context as _;
use lunlink_dbus::values::{Digest, Startup, UpdateEffect};
use lunlink_dbus::zvariant::OwnedObjectPath;
use lunlink_dbus::{Options, MANAGER_INTERFACE, NODE_INTERFACE, ROOT_PATH};

use super::Ctx;
use crate::auth::AuthArgs;
use crate::exit::CtlError;
use crate::model::{NodeInfo, Snapshot};
use crate::output::{write_stdout, Fields};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Show every setting of a node.
    Show(Select),
    /// Create a static node (no discovery needed).
    Create(Create),
    /// Change a node's settings.
    Update(Update),
    /// Forget a node (it must be logged out).
    Delete(Select),
}

/// Which node: TARGET, plus --portal when the target has several.
#[derive(Debug, Clone, clap::Args)]
pub struct Select {
    /// Target name.
    pub target: String,

    /// The node's portal (host[:port]), needed when the target has several.
    #[arg(long, value_name = "PORTAL")]
    pub portal: Option<String>,
}

/// Settings shared by create and update (RFC 7143 §13.1 for the digests).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Settings {
    /// manual, or automatic to log in at daemon start (LoginAll --automatic-only).
    #[arg(long, value_name = "manual|automatic")]
    pub startup: Option<Startup>,

    /// HeaderDigest offer, most preferred first: crc32c, none.
    #[arg(long, value_name = "DIGEST,...", value_delimiter = ',')]
    pub header_digest: Option<Vec<Digest>>,

    /// DataDigest offer, most preferred first: crc32c, none.
    #[arg(long, value_name = "DIGEST,...", value_delimiter = ',')]
    pub data_digest: Option<Vec<Digest>>,

    /// Seconds IO waits for a lost session to come back (0 fails at once, -1 for ever).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub replacement_timeout: Option<i32>,

    /// Seconds of silence before a NOP-Out ping (0: no pings).
    #[arg(long, value_name = "SECONDS")]
    pub noop_interval: Option<u32>,

    /// Seconds a ping may go unanswered before the connection counts as dead.
    #[arg(long, value_name = "SECONDS")]
    pub noop_timeout: Option<u32>,

    /// Path policy of the logical units this node reaches first: failover, round-robin,
    /// queue-depth.
    #[arg(long, value_name = "POLICY")]
    pub multipath_policy: Option<String>,

    #[command(flatten)]
    pub auth: AuthArgs,
}

impl Settings {
    fn options(&self) -> anyhow::Result<Options> {
        let mut o = self.auth.apply(Options::new())?;
        if let Some(s) = self.startup {
            o = o.startup(s);
        }
        if let Some(d) = &self.header_digest {
            o = o.header_digest(d.clone());
        }
        if let Some(d) = &self.data_digest {
            o = o.data_digest(d.clone());
        }
        if let Some(v) = self.replacement_timeout {
            o = o.replacement_timeout(v);
        }
        if let Some(v) = self.noop_interval {
            o = o.noop_interval(v);
        }
        if let Some(v) = self.noop_timeout {
            o = o.noop_timeout(v);
        }
        if let Some(v) = &self.multipath_policy {
            o = o.multipath_policy(v.clone());
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Create {
    /// Target name.
    pub target: String,
    /// Portal: host[:port], IPv6 in brackets.
    pub portal: String,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Update {
    #[command(flatten)]
    pub select: Select,
    #[command(flatten)]
    pub settings: Settings,
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Show(sel) => show(ctx, sel).await,
        Cmd::Create(c) => create(ctx, c).await,
        Cmd::Update(u) => update(ctx, u).await,
        Cmd::Delete(sel) => delete(ctx, sel).await,
    }
}

async fn show(ctx: &Ctx, sel: Select) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    let node = snap.find_node(&sel.target, sel.portal.as_deref())?;
    if ctx.out.json {
        return ctx.out.json(node);
    }
    write_stdout(&render(&snap, node))
}

pub fn render(snap: &Snapshot, n: &NodeInfo) -> String {
    let session = match &n.session {
        None => "-".to_owned(),
        Some(p) => match snap.session_at(p) {
            Some(s) => format!("{} ({})", p, s.state),
            None => p.clone(),
        },
    };
    let mut f = Fields::new();
    f.add("Target", n.target.clone())
        .add("Portal", n.portal.clone())
        .add("TPGT", n.tpgt.to_string())
        .add("Startup", n.startup.clone())
        .add("Auth method", n.auth_method.clone())
        .add("Username", n.username.clone())
        .add("Reverse username", n.reverse_username.clone())
        .add("Session", session)
        .add("Object", n.path.clone());
    f.render()
}

async fn create(ctx: &Ctx, c: Create) -> anyhow::Result<()> {
    let opts = c.settings.options()?;
    let node: OwnedObjectPath = ctx
        .act(ROOT_PATH, MANAGER_INTERFACE, "CreateNode", &(c.target.as_str(), c.portal.as_str(), opts.to_dict()))
        .await
        .with_context(|| format!("cannot create node {} at {}", c.target, c.portal))?;
    if ctx.out.json {
        return ctx.out.json(&serde_json::json!({ "node": node.as_str() }));
    }
    write_stdout(&format!("{}\n", node.as_str()))
}

async fn update(ctx: &Ctx, u: Update) -> anyhow::Result<()> {
    let opts = u.settings.options()?;
    if opts.is_empty() {
        return Err(CtlError::Invalid(
            "nothing to update: give --startup, --auth-file, --password-prompt, --auth-method, \
             --chap-algorithms, --header-digest, --data-digest, --replacement-timeout, \
             --noop-interval, --noop-timeout or --multipath-policy"
                .into(),
        )
        .into());
    }
    let snap = ctx.snapshot().await?;
    let node = snap
        .find_node(&u.select.target, u.select.portal.as_deref())
        .context("update failed")?;
    let effect: String = ctx
        .act(&node.path, NODE_INTERFACE, "Update", &(opts.to_dict(),))
        .await
        .with_context(|| format!("cannot update node {} at {}", node.target, node.portal))?;
    if ctx.out.json {
        return ctx.out.json(&serde_json::json!({ "effect": effect }));
    }
    let when = match effect.parse::<UpdateEffect>() {
        Ok(UpdateEffect::Now) => "now in effect".to_owned(),
        Ok(UpdateEffect::NextLogin) => "in effect from the next login".to_owned(),
        Err(_) => format!("in effect: {effect}"),
    };
    write_stdout(&format!(
        "Updated {} at {}; {when}.\n",
        node.target, node.portal
    ))
}

async fn delete(ctx: &Ctx, sel: Select) -> anyhow::Result<()> {
    let snap = ctx.snapshot().await?;
    let node = snap
        .find_node(&sel.target, sel.portal.as_deref())
        .context("delete failed")?;
    ctx.act::<_, ()>(&node.path, NODE_INTERFACE, "Delete", &())
        .await
        .with_context(|| format!("cannot delete node {} at {}", node.target, node.portal))
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{sample, B};

    #[test]
    fn show_lists_every_setting() {
        let snap = sample();
        let n = snap.find_node(B, Some("192.0.2.2")).expect("node");
        let text = super::render(&snap, n);
        assert!(
            text.contains("          Target: iqn.2026-01.org.example:b\n"),
            "{text}"
        );
        assert!(text.contains("        Username: -\n"), "{text}");
        assert!(
            text.contains("         Session: /org/lunlink/Initiator1/session/5 (logged-in)\n"),
            "{text}"
        );
        assert!(text.contains("Reverse username: -\n"), "{text}");
    }
}
