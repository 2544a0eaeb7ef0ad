//! The introspection XML checked in under dbus/ is what the real daemon serves.
//!
//! lunlinkd runs on a private bus with a real tgtd behind it, so that a node, a session and a
//! LUN object exist; each object's `org.freedesktop.DBus.Introspectable.Introspect` reply is
//! compared with `dbus/<interface>.xml`. Both sides are reduced to a canonical form first:
//! methods, signals, properties and annotations sorted by name, attribute order and whitespace
//! ignored, comments dropped; argument order, names, types and directions kept. Any difference
//! in the API (a member added, removed or renamed, a type, an argument name, an
//! EmitsChangedSignal annotation) fails the test.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use lunlink_dbus::names::{LOGICAL_UNIT_INTERFACE, LUN_INTERFACE, MANAGER_INTERFACE, NODE_INTERFACE, ROOT_PATH, SESSION_INTERFACE};
use lunlink_dbus::zvariant::OwnedObjectPath;
use lunlink_dbus::BUS_NAME;
use lunlink_tests::{Bus, Tgtd};

const STANDARD: [&str; 3] =
    ["org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Properties"];

fn xml_file(interface: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dbus");
    dir.canonicalize().unwrap_or(dir).join(format!("{interface}.xml"))
}

#[test]
fn live_introspection_matches_the_checked_in_xml() {
    let tgt = Tgtd::start();
    tgt.add_target(1, "iqn.2024-01.test:introspect").unwrap();
    tgt.add_lun_file(1, 1, 8 << 20).unwrap();
    tgt.bind_all(1).unwrap();
    let bus = Bus::start();
    let dirs = Dirs::new();
    let d = Daemon::start(&bus, &dirs);
    let rt = runtime();
    let conn = run(&rt, connect(&bus));

    // One object of each kind.
    let (node_path, session_path, lun_path, lu_path) = run(&rt, async {
        let m = manager(&conn).await;
        m.discover(&tgt.portal(), &no_opts()).await.unwrap();
        let s = m.login("iqn.2024-01.test:introspect", "", &no_opts()).await.unwrap();
        let sp = session(&conn, &s).await;
        let luns = sp.luns().await.unwrap();
        assert_eq!(luns.len(), 1, "one LUN expected: {luns:?}");
        let lu = lun(&conn, &luns[0]).await.logical_unit().await.unwrap();
        (sp.node().await.unwrap(), s, luns[0].clone(), lu)
    });

    let root = OwnedObjectPath::try_from(ROOT_PATH).unwrap();
    let objects = [
        (&root, MANAGER_INTERFACE, Some("org.freedesktop.DBus.ObjectManager")),
        (&node_path, NODE_INTERFACE, None),
        (&session_path, SESSION_INTERFACE, None),
        (&lun_path, LUN_INTERFACE, None),
        (&lu_path, LOGICAL_UNIT_INTERFACE, None),
    ];
    let mut failures = Vec::new();
    for (path, interface, extra) in objects {
        let live_xml = run(&rt, async {
            zbus::fdo::IntrospectableProxy::builder(&conn)
                .destination(BUS_NAME)
                .unwrap()
                .path(path.clone())
                .unwrap()
                .build()
                .await
                .unwrap()
                .introspect()
                .await
                .unwrap()
        });
        let live = parse(&live_xml).unwrap_or_else(|e| panic!("lunlinkd's XML for {path} does not parse: {e}\n{live_xml}"));
        assert_eq!(live.name, "node");

        // The object carries the standard interfaces and its own, nothing else.
        let names: BTreeSet<&str> = live.children("interface").map(|i| i.attr("name").unwrap_or("")).collect();
        let mut want: BTreeSet<&str> = STANDARD.into_iter().collect();
        want.insert(interface);
        want.extend(extra);
        assert_eq!(names, want, "interfaces of {path}");

        let file = xml_file(interface);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let checked_in = parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        let file_ifaces: Vec<&Element> = checked_in.children("interface").collect();
        assert_eq!(file_ifaces.len(), 1, "{} must hold exactly one interface", file.display());
        assert_eq!(file_ifaces[0].attr("name"), Some(interface), "{}", file.display());

        let live_iface = live.children("interface").find(|i| i.attr("name") == Some(interface)).unwrap();
        let (want, got) = (canonical(file_ifaces[0]), canonical(live_iface));
        if want != got {
            failures.push(format!(
                "{interface} on {path} differs from {}:\n{}\n--- lunlinkd serves (raw) ---\n{}",
                file.display(),
                diff(&want, &got),
                live_xml
            ));
        }
    }
    d.stop();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The canonical form must catch what matters and nothing else; prove it on small inputs.
#[test]
fn canonical_form_ignores_layout_and_catches_api_changes() {
    let base = r#"<node><interface name="x.Y">
        <method name="B"><arg name="a" type="s" direction="in"/><arg type="o" direction="out"/></method>
        <method name="A"/>
        <!-- a comment -->
        <property name="P" type="s" access="read"><annotation name="k" value="const"/></property>
    </interface></node>"#;
    let reordered = r#"<?xml version="1.0"?>
        <!DOCTYPE node PUBLIC "-//x//DTD y//EN" "http://example.invalid/introspect.dtd">
        <node>
          <interface name="x.Y">
            <property access="read" type="s" name="P">
              <annotation value="const" name="k"/>
            </property>
            <method name="A"></method>
            <method name="B">
              <arg type="s" name="a"/>
              <arg direction="out" type="o"/>
            </method>
          </interface>
        </node>"#;
    let c = |x: &str| canonical(parse(x).unwrap().children("interface").next().unwrap());
    assert_eq!(c(base), c(reordered));
    for changed in [
        base.replace(r#"type="o""#, r#"type="s""#),                       // a type
        base.replace(r#"name="a""#, r#"name="b""#),                       // an argument name
        base.replace(r#"<method name="A"/>"#, ""),                        // a member gone
        base.replace(r#"value="const""#, r#"value="false""#),             // an annotation
        base.replace(r#"direction="in""#, r#"direction="out""#),          // a direction
        base.replace(r#"access="read""#, r#"access="readwrite""#),        // access
        base.replace(r#"<arg name="a" type="s" direction="in"/><arg type="o" direction="out"/>"#,
                     r#"<arg type="o" direction="out"/><arg name="a" type="s" direction="in"/>"#), // order
    ] {
        assert_ne!(c(base), c(&changed), "not caught: {changed}");
    }
    assert!(parse("<node><interface></node>").is_err());
    assert!(parse("<node>text</node>").is_err());
}

// ---- a small XML reader, enough for D-Bus introspection data ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses one root element; skips the XML declaration, DOCTYPE and comments; refuses text
/// content, unbalanced tags and anything after the root.
fn parse(xml: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut rest = xml;
    loop {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            break;
        }
        let Some(tag) = trimmed.strip_prefix('<') else {
            return Err(format!("unexpected text {:?}", &trimmed[..trimmed.len().min(20)]));
        };
        let skip_to = |end: &str| tag.find(end).map(|i| &tag[i + end.len()..]).ok_or(format!("unterminated <{end}"));
        if tag.starts_with("!--") {
            rest = skip_to("-->")?;
            continue;
        }
        if tag.starts_with('?') {
            rest = skip_to("?>")?;
            continue;
        }
        if tag.starts_with('!') {
            rest = skip_to(">")?;
            continue;
        }
        let end = tag.find('>').ok_or("unterminated tag")?;
        let (body, after) = (&tag[..end], &tag[end + 1..]);
        rest = after;
        if let Some(name) = body.strip_prefix('/') {
            let e = stack.pop().ok_or(format!("</{name}> without an open element"))?;
            if e.name != name.trim() {
                return Err(format!("<{}> closed by </{}>", e.name, name.trim()));
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(e),
                None if root.is_none() => root = Some(e),
                None => return Err("more than one root element".into()),
            }
            continue;
        }
        let self_closing = body.ends_with('/');
        let body = body.trim_end_matches('/');
        let (name, mut attrs_text) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        let mut e = Element { name: name.to_owned(), attrs: Vec::new(), children: Vec::new() };
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let (key, v) = attrs_text.split_once('=').ok_or(format!("attribute without value in <{name}>"))?;
            let v = v.trim_start();
            let quote = v.chars().next().filter(|q| *q == '"' || *q == '\'').ok_or("unquoted attribute")?;
            let close = v[1..].find(quote).ok_or("unterminated attribute")?;
            e.attrs.push((key.trim().to_owned(), unescape(&v[1..=close])));
            attrs_text = &v[close + 2..];
        }
        if self_closing {
            match stack.last_mut() {
                Some(parent) => parent.children.push(e),
                None if root.is_none() => root = Some(e),
                None => return Err("more than one root element".into()),
            }
        } else {
            stack.push(e);
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{}> is never closed", open.name));
    }
    root.ok_or_else(|| "no element".into())
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// One line per member, argument and annotation, members sorted; see the module doc.
fn canonical(iface: &Element) -> Vec<String> {
    fn annotations(e: &Element, indent: &str, out: &mut Vec<String>) {
        let mut a: Vec<String> = e
            .children("annotation")
            .map(|a| format!("{indent}annotation {}={}", a.attr("name").unwrap_or("?"), a.attr("value").unwrap_or("?")))
            .collect();
        a.sort();
        out.extend(a);
    }
    fn other(e: &Element, known: &[&str], indent: &str, out: &mut Vec<String>) {
        // Anything unexpected still takes part in the comparison.
        for c in e.children.iter().filter(|c| !known.contains(&c.name.as_str())) {
            let mut attrs = c.attrs.clone();
            attrs.sort();
            out.push(format!("{indent}<{}> {attrs:?} ({} children)", c.name, c.children.len()));
        }
    }
    let mut out = vec![format!("interface {}", iface.attr("name").unwrap_or("?"))];
    annotations(iface, "  ", &mut out);
    other(iface, &["method", "signal", "property", "annotation"], "  ", &mut out);
    for (kind, default_dir) in [("method", "in"), ("signal", "out")] {
        let mut members: Vec<&Element> = iface.children(kind).collect();
        members.sort_by_key(|m| m.attr("name"));
        for m in members {
            out.push(format!("  {kind} {}", m.attr("name").unwrap_or("?")));
            for a in m.children("arg") {
                out.push(format!(
                    "    arg {} {} name={}",
                    a.attr("direction").unwrap_or(default_dir),
                    a.attr("type").unwrap_or("?"),
                    a.attr("name").unwrap_or("")
                ));
                annotations(a, "      ", &mut out);
            }
            annotations(m, "    ", &mut out);
            other(m, &["arg", "annotation"], "    ", &mut out);
        }
    }
    let mut props: Vec<&Element> = iface.children("property").collect();
    props.sort_by_key(|p| p.attr("name"));
    for p in props {
        out.push(format!(
            "  property {} {} {}",
            p.attr("name").unwrap_or("?"),
            p.attr("type").unwrap_or("?"),
            p.attr("access").unwrap_or("?")
        ));
        annotations(p, "    ", &mut out);
        other(p, &["annotation"], "    ", &mut out);
    }
    out
}

/// Lines only in the checked-in file (-) and only in the live data (+).
fn diff(want: &[String], got: &[String]) -> String {
    let mut out = Vec::new();
    for l in want.iter().filter(|l| !got.contains(l)) {
        out.push(format!("- {l}"));
    }
    for l in got.iter().filter(|l| !want.contains(l)) {
        out.push(format!("+ {l}"));
    }
    if out.is_empty() {
        // Same lines, different order: show both.
        out.push(format!("checked in:\n{}\nlive:\n{}", want.join("\n"), got.join("\n")));
    }
    out.join("\n")
}
