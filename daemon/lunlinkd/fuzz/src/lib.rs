//! What each fuzz target of lunlinkd does with its input, shared by the cargo-fuzz targets
//! (`fuzz_targets/<name>.rs`, nightly) and by the stable replay test
//! (`daemon/lunlinkd/tests/fuzz_corpus.rs`, which includes this file), so the two never drift.
//!
//! The inputs are text from users: the configuration file, node records (written by lunlinkd,
//! but edited by hand too), and names and portals given on the command line or over D-Bus.
//! Each function must not panic, and asserts what must hold of whatever is accepted.

use std::path::Path;

use lunlinkd::config::Config;
use lunlinkd::initiator_name::{normalize_name, validate_name};
use lunlinkd::nodes::{self, NodeKey};

/// A fuzz target: its name (`fuzz_targets/<name>.rs`) and what it does with an input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target of this crate.
pub const TARGETS: &[Target] = &[("config", config), ("node_record", node_record), ("names", names)];

/// Where the fuzzed configuration claims to live: relative `password_file`s resolve below it,
/// to nothing.
const CONFIG_PATH: &str = "/nonexistent/lunlink-fuzz/lunlink.toml";

/// The configuration file (`config/lunlink.toml`): what loads is valid, and written back as
/// TOML it loads to the same configuration.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `password_file` may name any file; reading devices or kernel files (/dev/zero never
    // ends) is the administrator's business, not the parser's.
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return;
    }
    let path = Path::new(CONFIG_PATH);
    match Config::from_toml(text, path) {
        Ok(c) => {
            let again = toml::to_string(&c).expect("a loaded configuration serializes");
            match Config::from_toml(&again, path) {
                Ok(back) => assert_eq!(back, c, "written back as\n{again}"),
                Err(e) => panic!("a loaded configuration written back does not load: {e}\n{again}"),
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A node record (`<state-dir>/nodes/*.toml`): what loads is valid, and the store's own
/// rendering of it loads to the same node.
pub fn node_record(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match nodes::parse_record(text) {
        Ok(node) => {
            node.validate().expect("a loaded node is valid");
            let rendered = nodes::render(&node).expect("a loaded node renders");
            let rendered = String::from_utf8(rendered).expect("records are UTF-8");
            assert_eq!(nodes::parse_record(&rendered).as_ref(), Ok(&node), "rendered as\n{rendered}");
            check_file_name(&node.key());
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// Initiator and target names (RFC 7143 §4.2.7) and portals as users give them, and the node
/// record file names made of them. The input is up to four 0xff-separated parts: target,
/// portal, and a second target and portal; a second key that differs from the first must get
/// another file name.
pub fn names(data: &[u8]) {
    let parts: Vec<&str> = data.split(|&b| b == 0xff).filter_map(|p| std::str::from_utf8(p).ok()).collect();
    for s in &parts {
        if validate_name(s).is_ok() {
            assert!(s.is_ascii() && !s.is_empty());
        }
        if let Ok(n) = normalize_name(s) {
            assert_eq!(normalize_name(&n).ok().as_ref(), Some(&n), "normalize_name is not idempotent");
            assert!(validate_name(&n).is_ok());
        }
        if let Ok(p) = nodes::normalize_portal(s) {
            assert_eq!(nodes::normalize_portal(&p).ok().as_ref(), Some(&p), "normalize_portal is not idempotent");
            let (a, b) = (nodes::parse_portal(s), nodes::parse_portal(&p));
            assert_eq!(a.ok(), b.ok(), "a portal and its normal form differ");
        }
    }
    let key = |t: Option<&&str>, p: Option<&&str>| NodeKey::new(t?, p?, 1).ok();
    let first = key(parts.first(), parts.get(1));
    let second = key(parts.get(2), parts.get(3));
    for k in first.iter().chain(&second) {
        check_file_name(k);
    }
    if let (Some(a), Some(b)) = (first, second) {
        if a != b {
            assert_ne!(a.file_name(), b.file_name(), "two nodes share a record file");
        }
    }
}

/// A record's file name stays one harmless path component.
fn check_file_name(k: &NodeKey) {
    let f = k.file_name();
    assert!(f.ends_with(".toml") && !f.starts_with('.') && f.len() <= 255, "{f}");
    assert!(
        f.bytes().all(|b| b.is_ascii_alphanumeric() || b".-%,~".contains(&b)),
        "file name {f:?} has a byte outside [A-Za-z0-9.-%,~]"
    );
}
