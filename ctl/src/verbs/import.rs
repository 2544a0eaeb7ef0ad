//! `lunlinkctl import open-iscsi [--dry-run] [--iscsi-dir DIR]`: takes over what iscsiadm
//! keeps in /etc/iscsi: the initiator name (`initiatorname.iscsi`) and the node records
//! (`nodes/<target>/<address>,<port>,<tpgt>/<iface>`, or a file in place of the iface
//! directory in old layouts), made into lunlink nodes through CreateNode. A node lunlink
//! already has is never changed. Secrets go from the record into the D-Bus call only: never
//! printed, never on a command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lunlink_dbus::values::{AuthMethod, ChapAlgorithm, Digest, Startup};
use lunlink_dbus::zvariant::OwnedObjectPath;
use lunlink_dbus::{Options, MANAGER_INTERFACE, ROOT_PATH};
use serde::Serialize;

use super::Ctx;
use crate::exit::CtlError;
use crate::output::write_stdout;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Import the initiator name and node records of open-iscsi (iscsiadm).
    OpenIscsi(Args),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Show what would be imported, change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// open-iscsi's configuration directory.
    #[arg(long, value_name = "DIR", default_value = "/etc/iscsi")]
    pub iscsi_dir: PathBuf,
}

/// One node record of open-iscsi, as far as lunlink can use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub file: PathBuf,
    pub target: String,
    pub portal: String,
    pub tpgt: u16,
    pub startup: Option<Startup>,
    pub auth: Option<AuthMethod>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub reverse_username: Option<String>,
    pub reverse_password: Option<String>,
    pub chap_algorithms: Option<Vec<ChapAlgorithm>>,
    pub header_digest: Option<Vec<Digest>>,
    pub data_digest: Option<Vec<Digest>>,
    /// Settings lunlink keeps only in lunlink.toml ([timeouts]): (open-iscsi key, value).
    pub not_per_node: Vec<(String, String)>,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub target: String,
    pub portal: String,
    pub tpgt: u16,
    /// `imported`, `would-import` (--dry-run), `skipped` or `failed`.
    pub action: String,
    /// What was taken (settings, never secrets), or why it was skipped.
    pub detail: String,
    /// open-iscsi settings that lunlink has only globally, left for lunlink.toml.
    pub not_taken: Vec<String>,
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub iscsi_dir: String,
    pub dry_run: bool,
    /// open-iscsi's initiator name, if it has one.
    pub initiator_name: Option<String>,
    /// `imported`, `would-import`, `unchanged`, `skipped` or `failed`, with why.
    pub initiator_name_action: String,
    pub nodes: Vec<Outcome>,
}

/// `key = value` lines of an iscsiadm record ('#' starts a comment line).
fn parse_kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn digests(v: &str) -> Option<Vec<Digest>> {
    let list: Vec<Digest> = v
        .split(',')
        .filter_map(|d| match d.trim().to_ascii_lowercase().as_str() {
            "crc32c" => Some(Digest::Crc32c),
            "none" => Some(Digest::None),
            _ => None,
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

fn chap_algs(v: &str) -> Option<Vec<ChapAlgorithm>> {
    let list: Vec<ChapAlgorithm> = v
        .split(',')
        .filter_map(|a| match a.trim().to_ascii_uppercase().as_str() {
            "MD5" => Some(ChapAlgorithm::Md5),
            "SHA1" => Some(ChapAlgorithm::Sha1),
            "SHA256" => Some(ChapAlgorithm::Sha256),
            "SHA3-256" => Some(ChapAlgorithm::Sha3_256),
            _ => None,
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The per-node timeouts of open-iscsi and the lunlink.toml key that holds each.
const TIMEOUTS: &[(&str, &str)] = &[
    ("node.session.timeo.replacement_timeout", "replacement"),
    ("node.conn[0].timeo.login_timeout", "login"),
    ("node.conn[0].timeo.logout_timeout", "logout"),
    ("node.conn[0].timeo.noop_out_interval", "noop_interval"),
    ("node.conn[0].timeo.noop_out_timeout", "noop_timeout"),
];
/// iscsiadm's defaults for those (iscsid.conf): values equal to them are not reported.
const OPEN_ISCSI_DEFAULTS: &[(&str, &str)] = &[
    ("node.session.timeo.replacement_timeout", "120"),
    ("node.conn[0].timeo.login_timeout", "15"),
    ("node.conn[0].timeo.logout_timeout", "15"),
    ("node.conn[0].timeo.noop_out_interval", "5"),
    ("node.conn[0].timeo.noop_out_timeout", "5"),
];

/// Reads one record file; None (with the reason) when it is no usable node.
pub fn parse_record(file: &Path, text: &str) -> Result<Record, String> {
    let kv = parse_kv(text);
    let get = |k: &str| kv.get(k).map(String::as_str).filter(|v| !v.is_empty() && *v != "<empty>");
    let target = get("node.name").ok_or("no node.name")?.to_owned();
    let address = get("node.conn[0].address").ok_or("no node.conn[0].address")?;
    let port = get("node.conn[0].port").unwrap_or("3260");
    if let Some(t) = get("iface.transport_name").filter(|t| *t != "tcp") {
        return Err(format!("transport {t} (lunlink speaks iSCSI over TCP only)"));
    }
    let portal = if address.contains(':') { format!("[{address}]:{port}") } else { format!("{address}:{port}") };
    let tpgt = get("node.tpgt").and_then(|t| t.parse().ok()).unwrap_or(1);
    let startup = match get("node.startup") {
        Some("automatic" | "onboot") => Some(Startup::Automatic),
        Some("manual") => Some(Startup::Manual),
        _ => None,
    };
    let auth = match get("node.session.auth.authmethod").map(str::to_ascii_uppercase).as_deref() {
        Some("CHAP") => Some(AuthMethod::Chap),
        Some("NONE") => Some(AuthMethod::None),
        _ => None,
    };
    let chap = auth == Some(AuthMethod::Chap);
    let s = |k: &str| if chap { get(k).map(str::to_owned) } else { None };
    let mut not_per_node = Vec::new();
    for (key, _) in TIMEOUTS {
        if let Some(v) = get(key) {
            let default = OPEN_ISCSI_DEFAULTS.iter().find(|(k, _)| k == key).map(|(_, d)| *d);
            if default != Some(v) {
                not_per_node.push(((*key).to_owned(), v.to_owned()));
            }
        }
    }
    Ok(Record {
        file: file.to_owned(),
        target,
        portal,
        tpgt,
        startup,
        auth,
        username: s("node.session.auth.username"),
        password: s("node.session.auth.password"),
        reverse_username: s("node.session.auth.username_in"),
        reverse_password: s("node.session.auth.password_in"),
        chap_algorithms: if chap { get("node.session.auth.chap_algs").and_then(chap_algs) } else { None },
        header_digest: get("node.conn[0].iscsi.HeaderDigest").and_then(digests),
        data_digest: get("node.conn[0].iscsi.DataDigest").and_then(digests),
        not_per_node,
    })
}

/// Every record file under `<dir>/nodes`: `<target>/<portal dir>/<iface>` (open-iscsi 2.x)
/// or `<target>/<portal file>` (older). Several ifaces of one node: the "default" one, else
/// the first by name; the others are reported as skipped.
/// Record files to read, and files left out with the reason.
type Found = (Vec<PathBuf>, Vec<(PathBuf, String)>);

pub fn find_records(dir: &Path) -> std::io::Result<Found> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let nodes = dir.join("nodes");
    if !nodes.is_dir() {
        return Ok((files, skipped));
    }
    let sorted = |p: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        Ok(v)
    };
    for target in sorted(&nodes)? {
        if !target.is_dir() {
            continue;
        }
        for portal in sorted(&target)? {
            if portal.is_file() {
                files.push(portal);
                continue;
            }
            let mut ifaces: Vec<PathBuf> = sorted(&portal)?.into_iter().filter(|p| p.is_file()).collect();
            if let Some(i) = ifaces.iter().position(|p| p.file_name().is_some_and(|n| n == "default")) {
                let d = ifaces.remove(i);
                ifaces.insert(0, d);
            }
            let mut it = ifaces.into_iter();
            if let Some(first) = it.next() {
                files.push(first);
            }
            for other in it {
                skipped.push((other, "another iface of a node already taken (lunlink has no ifaces)".into()));
            }
        }
    }
    Ok((files, skipped))
}

fn describe(r: &Record) -> String {
    let mut parts = Vec::new();
    if let Some(s) = r.startup {
        parts.push(format!("startup {s}"));
    }
    match (r.auth, &r.reverse_username) {
        (Some(AuthMethod::Chap), Some(_)) => parts.push("mutual CHAP".into()),
        (Some(AuthMethod::Chap), None) => parts.push("CHAP".into()),
        _ => {}
    }
    if let Some(a) = &r.chap_algorithms {
        parts.push(format!("CHAP algorithms {}", join(a)));
    }
    if let Some(d) = &r.header_digest {
        parts.push(format!("header digest {}", join(d)));
    }
    if let Some(d) = &r.data_digest {
        parts.push(format!("data digest {}", join(d)));
    }
    if parts.is_empty() {
        "defaults".into()
    } else {
        parts.join(", ")
    }
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// A per-node timeout lunlink's node records take too: (open-iscsi key) -> the option.
fn node_timeout(o: Options, key: &str, value: &str) -> Option<Options> {
    match key {
        "node.session.timeo.replacement_timeout" => value.parse().ok().map(|v| o.replacement_timeout(v)),
        "node.conn[0].timeo.noop_out_interval" => value.parse().ok().map(|v| o.noop_interval(v)),
        "node.conn[0].timeo.noop_out_timeout" => value.parse().ok().map(|v| o.noop_timeout(v)),
        _ => None,
    }
}

fn options(r: &Record) -> Options {
    let mut o = Options::new();
    for (k, v) in &r.not_per_node {
        if let Some(with) = node_timeout(o.clone(), k, v) {
            o = with;
        }
    }
    if let Some(s) = r.startup {
        o = o.startup(s);
    }
    if let Some(a) = r.auth {
        o = o.auth_method(a);
    }
    if r.auth == Some(AuthMethod::Chap) {
        if let Some(v) = &r.username {
            o = o.username(v.clone());
        }
        if let Some(v) = &r.password {
            o = o.password(v.clone());
        }
        if let Some(v) = &r.reverse_username {
            o = o.reverse_username(v.clone());
        }
        if let Some(v) = &r.reverse_password {
            o = o.reverse_password(v.clone());
        }
        if let Some(v) = &r.chap_algorithms {
            o = o.chap_algorithms(v.clone());
        }
    }
    if let Some(d) = &r.header_digest {
        o = o.header_digest(d.clone());
    }
    if let Some(d) = &r.data_digest {
        o = o.data_digest(d.clone());
    }
    o
}

fn initiator_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("initiatorname.iscsi")).ok()?;
    parse_kv(&text).get("InitiatorName").cloned().filter(|n| !n.is_empty())
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::OpenIscsi(args) = cmd;
    let dir = &args.iscsi_dir;
    if !dir.is_dir() {
        return Err(CtlError::NotFound(format!("{} does not exist (open-iscsi keeps its records there)", dir.display())).into());
    }
    let (files, skipped_files) =
        find_records(dir).with_context(|| format!("cannot read {}", dir.join("nodes").display()))?;
    let snap = ctx.snapshot().await?;
    let manager = ctx.manager_properties().await.context("cannot read lunlinkd's status")?;
    let current_name = manager.get("InitiatorName").and_then(|v| <&str>::try_from(v).ok()).unwrap_or_default().to_owned();

    let mut report = Report {
        iscsi_dir: dir.display().to_string(),
        dry_run: args.dry_run,
        initiator_name: initiator_name(dir),
        initiator_name_action: String::new(),
        nodes: Vec::new(),
    };
    report.initiator_name_action = match &report.initiator_name {
        None => "skipped: no InitiatorName in initiatorname.iscsi".into(),
        Some(n) if *n == current_name => "unchanged: lunlinkd already uses it".into(),
        Some(_) if args.dry_run => format!("would-import (replacing {current_name})"),
        Some(n) => match ctx.act::<_, ()>(ROOT_PATH, MANAGER_INTERFACE, "SetInitiatorName", &(n.as_str(),)).await {
            Ok(()) => format!("imported (was {current_name})"),
            Err(e) => format!("failed: {e}"),
        },
    };

    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                report.nodes.push(bad(&f, format!("cannot read it: {e}")));
                continue;
            }
        };
        let r = match parse_record(&f, &text) {
            Ok(r) => r,
            Err(why) => {
                report.nodes.push(bad(&f, why));
                continue;
            }
        };
        let not_taken: Vec<String> = r
            .not_per_node
            .iter()
            .filter(|(k, v)| node_timeout(Options::new(), k, v).is_none())
            .map(|(k, v)| {
                let key = TIMEOUTS.iter().find(|(o, _)| o == k).map_or("?", |(_, l)| *l);
                format!("{k} = {v} (lunlink: [timeouts] {key} in lunlink.toml, for every node)")
            })
            .collect();
        let mut out = Outcome {
            target: r.target.clone(),
            portal: r.portal.clone(),
            tpgt: r.tpgt,
            action: String::new(),
            detail: describe(&r),
            not_taken,
            file: f.display().to_string(),
        };
        let exists = snap.nodes.iter().any(|n| n.target == r.target && same_portal(&n.portal, &r.portal));
        if exists {
            out.action = "skipped".into();
            out.detail = "lunlink has this node already; its settings are kept".into();
        } else if args.dry_run {
            out.action = "would-import".into();
        } else {
            let created: Result<OwnedObjectPath, _> = ctx
                .act(ROOT_PATH, MANAGER_INTERFACE, "CreateNode", &(r.target.as_str(), r.portal.as_str(), options(&r).to_dict()))
                .await;
            match created {
                Ok(_) => out.action = "imported".into(),
                Err(e) => {
                    out.action = "failed".into();
                    out.detail = e.to_string();
                }
            }
        }
        report.nodes.push(out);
    }
    for (f, why) in skipped_files {
        report.nodes.push(Outcome { action: "skipped".into(), ..bad(&f, why) });
    }

    let failed = report.nodes.iter().filter(|n| n.action == "failed").count();
    if ctx.out.json {
        ctx.out.json(&report)?;
    } else {
        write_stdout(&render(&report))?;
    }
    if failed > 0 {
        return Err(anyhow::anyhow!("{failed} node record(s) of {} could not be imported", dir.display()));
    }
    Ok(())
}

fn bad(f: &Path, why: String) -> Outcome {
    Outcome {
        target: String::new(),
        portal: String::new(),
        tpgt: 0,
        action: "failed".into(),
        detail: why,
        not_taken: Vec::new(),
        file: f.display().to_string(),
    }
}

/// "127.0.0.1:3260" and "127.0.0.1" are the same portal.
fn same_portal(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        let has_port = if p.starts_with('[') { p.contains("]:") } else { p.contains(':') };
        if has_port { p.to_owned() } else { format!("{p}:3260") }
    };
    norm(a) == norm(b)
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let verb = if r.dry_run { "Would import" } else { "Importing" };
    s.push_str(&format!("{verb} from {}\n", r.iscsi_dir));
    match &r.initiator_name {
        Some(n) => s.push_str(&format!("initiator name {n}: {}\n", r.initiator_name_action)),
        None => s.push_str(&format!("initiator name: {}\n", r.initiator_name_action)),
    }
    if r.nodes.is_empty() {
        s.push_str("no node records\n");
    }
    for n in &r.nodes {
        if n.target.is_empty() {
            s.push_str(&format!("{} {}: {}\n", n.action, n.file, n.detail));
        } else {
            s.push_str(&format!("{} {} {} (tpgt {}): {}\n", n.action, n.target, n.portal, n.tpgt, n.detail));
        }
        for t in &n.not_taken {
            s.push_str(&format!("    not taken: {t}\n"));
        }
    }
    let count = |a: &str| r.nodes.iter().filter(|n| n.action == a).count();
    s.push_str(&format!(
        "{} imported, {} would be imported, {} skipped, {} failed\n",
        count("imported"),
        count("would-import"),
        count("skipped"),
        count("failed")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        // Written by Debian's iscsiadm (open-iscsi 2.1.8): `iscsiadm -m node -o new` and
        // `-o update` (see the commit that added them).
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/open-iscsi")
    }

    #[test]
    fn reads_records_written_by_iscsiadm() {
        let dir = fixture();
        let (files, skipped) = find_records(&dir).expect("records");
        assert!(skipped.is_empty());
        let recs: Vec<Record> = files
            .iter()
            .map(|f| parse_record(f, &std::fs::read_to_string(f).expect("read")).expect("record"))
            .collect();
        assert_eq!(recs.len(), 2, "{recs:?}");
        let a = &recs[0];
        assert_eq!(a.target, "iqn.2024-01.org.lunlink.test:import-a");
        assert_eq!((a.portal.as_str(), a.tpgt), ("127.0.0.1:3260", 1));
        assert_eq!(a.startup, Some(Startup::Automatic));
        assert_eq!(a.auth, Some(AuthMethod::Chap));
        assert_eq!(a.username.as_deref(), Some("alice-init"));
        assert_eq!(a.password.as_deref(), Some("secret-one-12"));
        assert_eq!(a.reverse_username.as_deref(), Some("target-a"));
        assert_eq!(a.reverse_password.as_deref(), Some("secret-two-12"));
        assert_eq!(a.chap_algorithms, Some(vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5]));
        assert_eq!(a.header_digest, Some(vec![Digest::Crc32c, Digest::None]));
        assert_eq!(a.data_digest, Some(vec![Digest::None]));
        // login_timeout 30 differs from open-iscsi's default; replacement_timeout 30 too.
        let keys: Vec<&str> = a.not_per_node.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"node.session.timeo.replacement_timeout"), "{keys:?}");
        let b = &recs[1];
        assert_eq!((b.portal.as_str(), b.tpgt), ("[::1]:3261", 2));
        assert_eq!(b.startup, Some(Startup::Manual));
        assert_eq!(b.auth, Some(AuthMethod::None));
        assert_eq!(b.username, None);
        assert_eq!(b.data_digest, Some(vec![Digest::Crc32c]));
        assert_eq!(initiator_name(&dir).as_deref(), Some("iqn.1993-08.org.debian:01:fixture0001"));
    }

    #[test]
    fn the_report_never_shows_secrets() {
        let dir = fixture();
        let (files, _) = find_records(&dir).expect("records");
        let text = std::fs::read_to_string(&files[0]).expect("read");
        let r = parse_record(&files[0], &text).expect("record");
        let report = Report {
            iscsi_dir: dir.display().to_string(),
            dry_run: true,
            initiator_name: None,
            initiator_name_action: "skipped".into(),
            nodes: vec![Outcome {
                target: r.target.clone(),
                portal: r.portal.clone(),
                tpgt: r.tpgt,
                action: "would-import".into(),
                detail: describe(&r),
                not_taken: Vec::new(),
                file: String::new(),
            }],
        };
        let text = render(&report) + &serde_json::to_string(&report).expect("json");
        assert!(text.contains("mutual CHAP"), "{text}");
        assert!(!text.contains("secret-one-12") && !text.contains("secret-two-12"), "{text}");
        let dict = options(&r);
        assert!(!dict.is_empty());
    }

    #[test]
    fn portals_compare_with_the_default_port() {
        assert!(same_portal("127.0.0.1", "127.0.0.1:3260"));
        assert!(same_portal("[::1]:3260", "[::1]"));
        assert!(!same_portal("127.0.0.1:3261", "127.0.0.1"));
    }

    #[test]
    fn other_transports_and_broken_records_are_refused() {
        let p = Path::new("x");
        assert!(parse_record(p, "node.name = iqn.a\nnode.conn[0].address = 10.0.0.1\niface.transport_name = iser\n").is_err());
        assert!(parse_record(p, "node.conn[0].address = 10.0.0.1\n").is_err());
    }
}
