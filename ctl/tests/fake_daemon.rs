//! lunlinkctl as a user runs it: the real binary against a stand-in lunlinkd on a private
//! dbus-daemon. The stand-in serves fixed objects and fails on cue, so the tests can check
//! text, JSON, the resolution of TARGET arguments, stdin auth files and exit codes.
//! End-to-end tests against the real daemon live elsewhere.
//!
//! Skipped (with a note on stderr) when `dbus-daemon` is not installed.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lunlink_dbus::zbus::{connection::Builder, fdo, interface};
use lunlink_dbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use lunlink_dbus::{Call, Error, Options, BUS_NAME, ROOT_PATH};

const A: &str = "iqn.2026-01.org.example:a";
const B: &str = "iqn.2026-01.org.example:b";
const SESSION: &str = "/org/lunlink/Initiator1/session/5";
const NEW_SESSION: &str = "/org/lunlink/Initiator1/session/7";
const LUN: &str = "/org/lunlink/Initiator1/lun/9";

type Log = Arc<Mutex<Vec<String>>>;

fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p).expect("constant path")
}

fn log(log: &Log, line: String) {
    if let Ok(mut l) = log.lock() {
        l.push(line);
    }
}

struct Manager {
    log: Log,
}

#[interface(name = "org.lunlink.Initiator1.Manager")]
impl Manager {
    async fn discover(
        &self,
        portal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<Vec<(String, String, u16)>, Error> {
        let o = Options::from_dict(&options, Call::Discover)?;
        log(
            &self.log,
            format!("Discover {portal} startup={:?}", o.startup),
        );
        if portal == "192.0.2.99" {
            return Err(Error::ConnectionFailed(
                "no route to host 192.0.2.99:3260".into(),
            ));
        }
        Ok(vec![
            (A.into(), "192.0.2.1:3260".into(), 1),
            (B.into(), "192.0.2.2:3260".into(), 1),
        ])
    }

    async fn login(
        &self,
        target: &str,
        portal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let o = Options::from_dict(&options, Call::Login)?;
        log(
            &self.log,
            format!(
                "Login {target} portal={portal} user={} pass={}",
                o.username.as_deref().unwrap_or("-"),
                o.password.as_deref().unwrap_or("-")
            ),
        );
        if o.password.as_deref() == Some("wrong") {
            return Err(Error::AuthenticationFailed(
                "the target rejected the CHAP response".into(),
            ));
        }
        match target {
            A => Ok(path(NEW_SESSION)),
            B => Ok(path(SESSION)),
            _ => Err(Error::NotFound(format!("no node for target {target}"))),
        }
    }

    async fn login_all(
        &self,
        options: HashMap<String, OwnedValue>,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        let o = Options::from_dict(&options, Call::LoginAll)?;
        log(
            &self.log,
            format!("LoginAll automatic_only={:?}", o.automatic_only),
        );
        Ok(vec![path(SESSION)])
    }

    async fn login_all_with_results(
        &self,
        options: HashMap<String, OwnedValue>,
    ) -> Result<Vec<(OwnedObjectPath, OwnedObjectPath, String, String)>, Error> {
        let o = Options::from_dict(&options, Call::LoginAll)?;
        log(
            &self.log,
            format!("LoginAllWithResults automatic_only={:?}", o.automatic_only),
        );
        Ok(vec![
            (
                path("/org/lunlink/Initiator1/node/1"),
                path("/"),
                "org.lunlink.Initiator1.Error.AuthenticationFailed".into(),
                format!("login to {A} on 192.0.2.1:3260 failed: the target rejected the CHAP credentials"),
            ),
            (path("/org/lunlink/Initiator1/node/2"), path(SESSION), String::new(), String::new()),
        ])
    }

    async fn logout(
        &self,
        session: ObjectPath<'_>,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(), Error> {
        let o = Options::from_dict(&options, Call::Logout)?;
        log(&self.log, format!("Logout {session} force={:?}", o.force));
        if o.force == Some(true) {
            Ok(())
        } else {
            Err(Error::InUse("/dev/ublkb0 is mounted on /mnt".into()))
        }
    }

    async fn create_node(
        &self,
        target: &str,
        portal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let o = Options::from_dict(&options, Call::CreateNode)?;
        log(
            &self.log,
            format!("CreateNode {target} {portal} {:?}", o.header_digest),
        );
        Ok(path("/org/lunlink/Initiator1/node/4"))
    }

    async fn set_default_auth(
        &self,
        scope: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(), Error> {
        let o = Options::from_dict(&options, Call::SetDefaultAuth)?;
        log(
            &self.log,
            format!("SetDefaultAuth {scope} {:?}", o.auth_method),
        );
        Ok(())
    }

    #[zbus(property)]
    fn initiator_name(&self) -> String {
        "iqn.2026-01.org.lunlink:host1".into()
    }
    #[zbus(property)]
    fn version(&self) -> String {
        "0.1.0".into()
    }
    #[zbus(property)]
    fn default_auth_method(&self) -> String {
        "none".into()
    }
    #[zbus(property)]
    fn default_username(&self) -> String {
        String::new()
    }
    #[zbus(property)]
    fn discovery_auth_method(&self) -> String {
        "none".into()
    }
    #[zbus(property)]
    fn discovery_username(&self) -> String {
        String::new()
    }
}

struct Node {
    target: &'static str,
    portal: &'static str,
    session: &'static str,
    log: Log,
}

#[interface(name = "org.lunlink.Initiator1.Node")]
impl Node {
    async fn login(&self, options: HashMap<String, OwnedValue>) -> Result<OwnedObjectPath, Error> {
        Options::from_dict(&options, Call::Login)?;
        Ok(path(SESSION))
    }
    async fn update(&self, options: HashMap<String, OwnedValue>) -> Result<String, Error> {
        let o = Options::from_dict(&options, Call::NodeUpdate)?;
        log(
            &self.log,
            format!("Update {} {} {:?}", self.target, self.portal, o.startup),
        );
        Ok("next-login".into())
    }
    async fn delete(&self) -> Result<(), Error> {
        log(&self.log, format!("Delete {} {}", self.target, self.portal));
        if self.session == "/" {
            Ok(())
        } else {
            Err(Error::InUse("the node is logged in; log out first".into()))
        }
    }
    #[zbus(property)]
    fn target(&self) -> String {
        self.target.into()
    }
    #[zbus(property)]
    fn portal(&self) -> String {
        self.portal.into()
    }
    #[zbus(property)]
    fn tpgt(&self) -> u16 {
        1
    }
    #[zbus(property)]
    fn startup(&self) -> String {
        "manual".into()
    }
    #[zbus(property)]
    fn auth_method(&self) -> String {
        "none".into()
    }
    #[zbus(property)]
    fn username(&self) -> String {
        String::new()
    }
    #[zbus(property)]
    fn reverse_username(&self) -> String {
        String::new()
    }
    #[zbus(property)]
    fn session(&self) -> OwnedObjectPath {
        path(self.session)
    }
}

struct Session;

#[interface(name = "org.lunlink.Initiator1.Session")]
impl Session {
    async fn logout(&self, options: HashMap<String, OwnedValue>) -> Result<(), Error> {
        Options::from_dict(&options, Call::Logout)?;
        Ok(())
    }
    async fn rescan(&self) -> Result<(), Error> {
        Ok(())
    }
    #[zbus(property)]
    fn target(&self) -> String {
        B.into()
    }
    #[zbus(property)]
    fn portal(&self) -> String {
        "192.0.2.2:3260".into()
    }
    #[zbus(property)]
    fn node(&self) -> OwnedObjectPath {
        path("/org/lunlink/Initiator1/node/2")
    }
    #[zbus(property)]
    fn state(&self) -> String {
        "logged-in".into()
    }
    #[zbus(property)]
    fn isid(&self) -> String {
        "400001370000".into()
    }
    #[zbus(property)]
    fn tsih(&self) -> u16 {
        3
    }
    #[zbus(property)]
    fn parameters(&self) -> HashMap<String, OwnedValue> {
        HashMap::from([
            ("MaxBurstLength".to_owned(), OwnedValue::from(262_144u32)),
            (
                "HeaderDigest".to_owned(),
                Value::from("CRC32C").try_to_owned().expect("str"),
            ),
        ])
    }
    #[zbus(property)]
    fn luns(&self) -> Vec<OwnedObjectPath> {
        vec![path(LUN)]
    }
    #[zbus(property)]
    fn commands(&self) -> u64 {
        10
    }
    #[zbus(property)]
    fn bytes_read(&self) -> u64 {
        4096
    }
    #[zbus(property)]
    fn bytes_written(&self) -> u64 {
        512
    }
    #[zbus(property)]
    fn errors(&self) -> u64 {
        0
    }
}

struct Lun;

#[interface(name = "org.lunlink.Initiator1.Lun")]
impl Lun {
    #[zbus(property)]
    fn lun(&self) -> u16 {
        0
    }
    #[zbus(property)]
    fn vendor(&self) -> String {
        "LIO-ORG".into()
    }
    #[zbus(property)]
    fn product(&self) -> String {
        "disk1".into()
    }
    #[zbus(property)]
    fn revision(&self) -> String {
        "4.0".into()
    }
    #[zbus(property)]
    fn serial(&self) -> String {
        "abc".into()
    }
    #[zbus(property)]
    fn wwid(&self) -> String {
        "naa.6001405abcdef".into()
    }
    #[zbus(property)]
    fn size(&self) -> u64 {
        10 << 30
    }
    #[zbus(property)]
    fn block_size(&self) -> u32 {
        512
    }
    #[zbus(property)]
    fn read_only(&self) -> bool {
        false
    }
    #[zbus(property)]
    fn device(&self) -> String {
        "/dev/ublkb0".into()
    }
    #[zbus(property)]
    fn device_error(&self) -> String {
        String::new()
    }
    #[zbus(property)]
    fn session(&self) -> OwnedObjectPath {
        path(SESSION)
    }
}

/// A private dbus-daemon, killed on drop.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bus() -> Option<Bus> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("bus.sock");
    let conf = dir.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            sock.display()
        ),
    )
    .expect("write bus config");
    let spawned = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--print-address=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping: cannot run dbus-daemon ({e}); install package dbus-daemon");
            return None;
        }
    };
    // The daemon prints its address once it listens.
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let address = line.trim().to_owned();
    assert!(!address.is_empty(), "dbus-daemon printed no address");
    Some(Bus {
        child,
        address,
        _dir: dir,
    })
}

/// The stand-in daemon on `bus`, owning the lunlinkd name.
async fn serve(address: &str, log: Log) -> lunlink_dbus::zbus::Connection {
    let node = |n: u8, target, portal, session| {
        (
            format!("/org/lunlink/Initiator1/node/{n}"),
            Node {
                target,
                portal,
                session,
                log: log.clone(),
            },
        )
    };
    let (p1, n1) = node(1, A, "192.0.2.1:3260", "/");
    let (p2, n2) = node(2, B, "192.0.2.2:3260", SESSION);
    let (p3, n3) = node(3, B, "[2001:db8::2]:3260", "/");
    Builder::address(address)
        .expect("address")
        .serve_at(ROOT_PATH, fdo::ObjectManager)
        .expect("om")
        .serve_at(ROOT_PATH, Manager { log: log.clone() })
        .expect("manager")
        .serve_at(p1, n1)
        .expect("node")
        .serve_at(p2, n2)
        .expect("node")
        .serve_at(p3, n3)
        .expect("node")
        .serve_at(SESSION, Session)
        .expect("session")
        .serve_at(LUN, Lun)
        .expect("lun")
        .name(BUS_NAME)
        .expect("name")
        .build()
        .await
        .expect("serve on the private bus")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run lunlinkctl with `args` on `address`, feeding `stdin`; killed after 20 s.
fn ctl(address: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lunlinkctl"))
        .arg("--bus")
        .arg(address)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lunlinkctl");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                panic!("lunlinkctl {args:?} did not finish in 20 s");
            }
        }
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(r: &Run) -> serde_json::Value {
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", r.stdout))
}

/// All scenarios share one bus and one stand-in: starting them is the slow part.
#[test]
fn lunlinkctl_against_a_stand_in_daemon() {
    let Some(bus) = start_bus() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let calls: Log = Arc::default();
    let addr = bus.address.as_str();

    // Before the stand-in owns the name: lunlinkd is "not running".
    let r = ctl(addr, &["nodes"], "");
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "lunlinkctl: cannot list lunlinkd's objects: lunlinkd is not running \
         (nobody owns org.lunlink.Initiator1 on this bus)\n"
    );

    let _server = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), serve(addr, calls.clone()))
            .await
            .expect("serving timed out")
    });
    let calls_text = || calls.lock().map(|c| c.join("\n")).unwrap_or_default();

    // Lists.
    let nodes = json(&ctl(addr, &["--json", "nodes"], ""));
    assert_eq!(nodes.as_array().map(Vec::len), Some(3));
    assert_eq!(nodes[0]["target"], A);
    assert_eq!(nodes[0]["session"], serde_json::Value::Null);
    assert_eq!(nodes[1]["session"], SESSION);
    assert_eq!(nodes[2]["portal"], "[2001:db8::2]:3260");
    assert_eq!(nodes[2]["auth_method"], "none");

    let r = ctl(addr, &["nodes", "--no-legend"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3);
    assert!(
        r.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("logged-in")),
        "{}",
        r.stdout
    );

    let luns = json(&ctl(addr, &["luns", "--json"], ""));
    assert_eq!(luns[0]["size"], 10u64 << 30);
    assert_eq!(luns[0]["device"], "/dev/ublkb0");
    let r = ctl(addr, &["luns"], "");
    assert!(r.stdout.contains("10.0 GiB"), "{}", r.stdout);

    let s = json(&ctl(addr, &["--json", "session", "show", "5"], ""));
    assert_eq!(s["parameters"]["MaxBurstLength"], 262_144);
    assert_eq!(s["path"], SESSION);
    let r = ctl(addr, &["session", "show", B], "");
    assert!(r.stdout.contains("HeaderDigest=CRC32C"), "{}", r.stdout);

    let st = json(&ctl(addr, &["--json"], ""));
    assert_eq!(st["initiator_name"], "iqn.2026-01.org.lunlink:host1");
    assert_eq!(st["nodes"], 3);

    // Resolution of TARGET arguments.
    let r = ctl(addr, &["node", "show", B], "");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("192.0.2.2:3260, [2001:db8::2]:3260"),
        "{}",
        r.stderr
    );
    let n = json(&ctl(
        addr,
        &["node", "show", B, "--portal", "2001:db8::2", "--json"],
        "",
    ));
    assert_eq!(n["path"], "/org/lunlink/Initiator1/node/3");
    let r = ctl(addr, &["node", "show", "iqn.2026-01.org.example:nope"], "");
    assert_eq!(r.code, 3, "{}", r.stderr);

    // Discovery.
    let r = ctl(
        addr,
        &["discover", "192.0.2.1", "--startup", "automatic"],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("TARGET"), "{}", r.stdout);
    assert!(r.stdout.ends_with("\n2 targets listed.\n"), "{}", r.stdout);
    assert!(calls_text().contains("Discover 192.0.2.1 startup=Some(Automatic)"));
    let r = ctl(addr, &["discover", "192.0.2.99"], "");
    assert_eq!(r.code, 7, "{}", r.stderr);
    // The daemon's message names the portal; lunlinkctl adds only the error's kind.
    assert_eq!(r.stderr, "lunlinkctl: connection failed: no route to host 192.0.2.99:3260\n");

    // Login: credentials from stdin reach the daemon; a refusal has its own exit code.
    let r = ctl(
        addr,
        &["login", A, "--auth-file", "-"],
        "username=u1\npassword=wrong\n",
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    // The real daemon's message names the target; lunlinkctl adds only the error's kind.
    assert_eq!(r.stderr, "lunlinkctl: authentication failed: the target rejected the CHAP response\n");
    let r = ctl(
        addr,
        &["login", A, "--auth-file", "-"],
        "username=u1\npassword=right\n",
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "/org/lunlink/Initiator1/session/7\n")
    );
    assert!(calls_text().contains(&format!("Login {A} portal= user=u1 pass=right")));
    let r = ctl(addr, &["login", A, "--auth-file", "-"], "password=x\n");
    assert_eq!(r.code, 2, "{}", r.stderr);
    // login --all: one line per failed node on stderr, exit 11, every node in --json.
    let r = ctl(addr, &["login", "--all", "--automatic-only", "--json"], "");
    assert_eq!(r.code, 11, "{}", r.stderr);
    let all: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(all[0]["target"], A);
    assert_eq!(all[0]["session"], serde_json::Value::Null);
    assert_eq!(all[0]["error"], "org.lunlink.Initiator1.Error.AuthenticationFailed");
    assert_eq!(all[1]["target"], B);
    assert_eq!(all[1]["session"], SESSION);
    assert!(
        r.stderr.contains(&format!("lunlinkctl: login to {A} on 192.0.2.1:3260 failed: the target rejected the CHAP credentials [AuthenticationFailed]")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("1 of 2 logins failed"), "{}", r.stderr);
    assert!(calls_text().contains("LoginAllWithResults automatic_only=Some(true)"));

    // Logout: in use unless forced.
    let r = ctl(addr, &["logout", B], "");
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("in use: /dev/ublkb0 is mounted on /mnt"),
        "{}",
        r.stderr
    );
    let r = ctl(addr, &["logout", SESSION, "--force"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(calls_text().contains(&format!("Logout {SESSION} force=Some(true)")));
    let r = ctl(addr, &["logout", A], "");
    assert_eq!(r.code, 3, "no session to A: {}", r.stderr);

    // Node changes.
    let u = json(&ctl(
        addr,
        &["node", "update", A, "--startup", "automatic", "--json"],
        "",
    ));
    assert_eq!(u["effect"], "next-login");
    let r = ctl(addr, &["node", "update", A], "");
    assert_eq!(r.code, 2, "nothing to update: {}", r.stderr);
    let r = ctl(addr, &["node", "delete", B, "--portal", "192.0.2.2"], "");
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = ctl(addr, &["node", "delete", A], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ctl(
        addr,
        &[
            "node",
            "create",
            A,
            "192.0.2.5",
            "--header-digest",
            "crc32c,none",
        ],
        "",
    );
    assert_eq!(r.stdout, "/org/lunlink/Initiator1/node/4\n", "{}", r.stderr);
    assert!(calls_text().contains("CreateNode"), "{}", calls_text());
    let r = ctl(
        addr,
        &["set-default-auth", "discovery", "--auth-method", "none"],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(calls_text().contains("SetDefaultAuth discovery Some(None)"));
}
