//! The proxies against a small in-process stand-in for lunlinkd over a peer-to-peer link:
//! checks that the proxy signatures match a service written to `dbus/API.md` and that named
//! errors arrive as their `Error` variants with their messages.

use std::collections::HashMap;
use std::time::Duration;

use lunlink_dbus::zbus::{self, connection::Builder, fdo, interface, Guid};
use lunlink_dbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use lunlink_dbus::{
    Call, Error, LunProxy, ManagerProxy, NodeProxy, ObjectManagerProxy, Options, SessionProxy,
    LUN_INTERFACE, NODE_INTERFACE, ROOT_PATH, SESSION_INTERFACE,
};

const NODE: &str = "/org/lunlink/Initiator1/node/n1";
const SESSION: &str = "/org/lunlink/Initiator1/session/1";
const LUN: &str = "/org/lunlink/Initiator1/lun/l1";
const TARGET: &str = "iqn.2026-01.org.example:disk1";

struct FakeManager;

#[interface(name = "org.lunlink.Initiator1.Manager")]
impl FakeManager {
    async fn discover(
        &self,
        portal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<Vec<(String, String, u16)>, Error> {
        Options::from_dict(&options, Call::Discover)?;
        if portal == "unreachable" {
            return Err(Error::ConnectionFailed(
                "no route to host 192.0.2.1:3260".into(),
            ));
        }
        Ok(vec![(TARGET.into(), "192.0.2.1:3260".into(), 1)])
    }

    async fn login(
        &self,
        target: &str,
        _portal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let o = Options::from_dict(&options, Call::Login)?;
        if o.password.as_deref() == Some("wrong") {
            return Err(Error::AuthenticationFailed(
                "the target rejected the CHAP response".into(),
            ));
        }
        if target != TARGET {
            return Err(Error::NotFound(format!("no node for target {target}")));
        }
        Ok(path(SESSION))
    }

    async fn login_all(
        &self,
        options: HashMap<String, OwnedValue>,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        Options::from_dict(&options, Call::LoginAll)?;
        Ok(vec![path(SESSION)])
    }

    async fn logout(
        &self,
        _session: ObjectPath<'_>,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(), Error> {
        let o = Options::from_dict(&options, Call::Logout)?;
        if o.force == Some(true) {
            Ok(())
        } else {
            Err(Error::InUse("/dev/ublkb0 is mounted on /mnt".into()))
        }
    }

    async fn create_node(
        &self,
        _target: &str,
        _portal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        Options::from_dict(&options, Call::CreateNode)?;
        Ok(path(NODE))
    }

    async fn set_default_auth(
        &self,
        scope: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(), Error> {
        let _: lunlink_dbus::values::AuthScope = scope.parse()?;
        Options::from_dict(&options, Call::SetDefaultAuth)?;
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
        "chap".into()
    }

    #[zbus(property)]
    fn discovery_username(&self) -> String {
        "disc".into()
    }
}

struct FakeNode;

#[interface(name = "org.lunlink.Initiator1.Node")]
impl FakeNode {
    async fn login(&self, options: HashMap<String, OwnedValue>) -> Result<OwnedObjectPath, Error> {
        Options::from_dict(&options, Call::Login)?;
        Ok(path(SESSION))
    }

    async fn update(&self, options: HashMap<String, OwnedValue>) -> Result<String, Error> {
        Options::from_dict(&options, Call::NodeUpdate)?;
        Ok("next-login".into())
    }

    async fn delete(&self) -> Result<(), Error> {
        Err(Error::InUse("the node is logged in; log out first".into()))
    }

    #[zbus(property)]
    fn target(&self) -> String {
        TARGET.into()
    }
    #[zbus(property)]
    fn portal(&self) -> String {
        "192.0.2.1:3260".into()
    }
    #[zbus(property)]
    fn tpgt(&self) -> u16 {
        1
    }
    #[zbus(property)]
    fn startup(&self) -> String {
        "automatic".into()
    }
    #[zbus(property)]
    fn auth_method(&self) -> String {
        "chap".into()
    }
    #[zbus(property)]
    fn username(&self) -> String {
        "user1".into()
    }
    #[zbus(property)]
    fn reverse_username(&self) -> String {
        String::new()
    }
    #[zbus(property)]
    fn session(&self) -> OwnedObjectPath {
        path(SESSION)
    }
}

struct FakeSession;

#[interface(name = "org.lunlink.Initiator1.Session")]
impl FakeSession {
    async fn logout(&self, options: HashMap<String, OwnedValue>) -> Result<(), Error> {
        Options::from_dict(&options, Call::Logout)?;
        Ok(())
    }
    async fn rescan(&self) -> Result<(), Error> {
        Err(Error::NotSupported(
            "REPORT LUNS is not supported by this target".into(),
        ))
    }
    #[zbus(property)]
    fn target(&self) -> String {
        TARGET.into()
    }
    #[zbus(property)]
    fn portal(&self) -> String {
        "192.0.2.1:3260".into()
    }
    #[zbus(property)]
    fn node(&self) -> OwnedObjectPath {
        path(NODE)
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
            ("InitialR2T".to_owned(), OwnedValue::from(true)),
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

struct FakeLun;

#[interface(name = "org.lunlink.Initiator1.Lun")]
impl FakeLun {
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

fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p).expect("constant path is valid")
}

/// A client connection to the fake service over a socket pair (no bus daemon needed).
async fn connect() -> (zbus::Connection, zbus::Connection) {
    let (a, b) = tokio::net::UnixStream::pair().expect("socketpair");
    let server = Builder::unix_stream(a)
        .server(Guid::generate())
        .expect("guid")
        .p2p()
        .serve_at(ROOT_PATH, fdo::ObjectManager)
        .expect("om")
        .serve_at(ROOT_PATH, FakeManager)
        .expect("manager")
        .serve_at(NODE, FakeNode)
        .expect("node")
        .serve_at(SESSION, FakeSession)
        .expect("session")
        .serve_at(LUN, FakeLun)
        .expect("lun")
        .build();
    let client = Builder::unix_stream(b).p2p().build();
    let (s, c) = tokio::try_join!(server, client).expect("p2p handshake");
    (s, c)
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("test timed out");
    });
}

#[test]
fn manager_calls_and_properties() {
    run(async {
        let (_s, c) = connect().await;
        let m = ManagerProxy::new(&c).await.expect("proxy");
        let found = m
            .discover(
                "192.0.2.1",
                &Options::new()
                    .startup(lunlink_dbus::values::Startup::Manual)
                    .to_dict(),
            )
            .await
            .expect("discover");
        assert_eq!(
            found,
            vec![(TARGET.to_owned(), "192.0.2.1:3260".to_owned(), 1)]
        );
        let s = m
            .login(TARGET, "", &Options::new().to_dict())
            .await
            .expect("login");
        assert_eq!(s.as_str(), SESSION);
        assert_eq!(
            m.login_all(&Options::new().automatic_only(true).to_dict())
                .await
                .ok(),
            Some(vec![path(SESSION)])
        );
        assert_eq!(
            m.initiator_name().await.ok().as_deref(),
            Some("iqn.2026-01.org.lunlink:host1")
        );
        assert_eq!(m.discovery_username().await.ok().as_deref(), Some("disc"));
        m.set_default_auth(
            "discovery",
            &Options::new().username("u").password("p").to_dict(),
        )
        .await
        .expect("set default auth");
    });
}

#[test]
fn named_errors_arrive_as_variants_with_messages() {
    run(async {
        let (_s, c) = connect().await;
        let m = ManagerProxy::new(&c).await.expect("proxy");

        let e = m
            .login(
                TARGET,
                "",
                &Options::new().username("u").password("wrong").to_dict(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::AuthenticationFailed(m) if m == "the target rejected the CHAP response"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "authentication failed: the target rejected the CHAP response"
        );

        let e = m
            .discover("unreachable", &Options::new().to_dict())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ConnectionFailed(_)), "{e:?}");

        let session = ObjectPath::try_from(SESSION).expect("path");
        let e = m
            .logout(&session, &Options::new().to_dict())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::InUse(m) if m.contains("mounted")),
            "{e:?}"
        );
        m.logout(&session, &Options::new().force(true).to_dict())
            .await
            .expect("forced logout");

        // The daemon refuses misplaced keys with InvalidArgument (API.md).
        let e = m
            .login(TARGET, "", &Options::new().force(true).to_dict())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("'force'")),
            "{e:?}"
        );

        let e = m
            .set_default_auth("everything", &Options::new().to_dict())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    });
}

#[test]
fn object_proxies_and_managed_objects() {
    run(async {
        let (_s, c) = connect().await;
        let om = ObjectManagerProxy::new(&c).await.expect("proxy");
        let objects = om.get_managed_objects().await.expect("GetManagedObjects");
        let node = &objects[&path(NODE)][NODE_INTERFACE];
        assert_eq!(<&str>::try_from(&node["Target"]).ok(), Some(TARGET));
        assert_eq!(u16::try_from(&node["Tpgt"]).ok(), Some(1));
        let lun = &objects[&path(LUN)][LUN_INTERFACE];
        assert_eq!(u64::try_from(&lun["Size"]).ok(), Some(10 << 30));
        assert!(objects[&path(SESSION)].contains_key(SESSION_INTERFACE));

        let n = NodeProxy::builder(&c)
            .path(NODE)
            .expect("path")
            .build()
            .await
            .expect("node");
        assert_eq!(n.startup().await.ok().as_deref(), Some("automatic"));
        assert_eq!(n.session().await.ok(), Some(path(SESSION)));
        assert_eq!(
            n.update(
                &Options::new()
                    .header_digest(vec![lunlink_dbus::values::Digest::Crc32c])
                    .to_dict()
            )
            .await
            .ok()
            .as_deref(),
            Some("next-login")
        );
        assert!(matches!(n.delete().await, Err(Error::InUse(_))));

        let s = SessionProxy::builder(&c)
            .path(SESSION)
            .expect("path")
            .build()
            .await
            .expect("session");
        let params = s.parameters().await.expect("parameters");
        assert_eq!(u32::try_from(&params["MaxBurstLength"]).ok(), Some(262_144));
        assert_eq!(s.luns().await.ok(), Some(vec![path(LUN)]));
        assert!(matches!(s.rescan().await, Err(Error::NotSupported(_))));

        let l = LunProxy::builder(&c)
            .path(LUN)
            .expect("path")
            .build()
            .await
            .expect("lun");
        assert_eq!(l.device().await.ok().as_deref(), Some("/dev/ublkb0"));
        assert_eq!(l.block_size().await.ok(), Some(512));
    });
}

#[test]
fn unknown_object_is_a_bus_error_not_a_named_one() {
    run(async {
        let (_s, c) = connect().await;
        let n = NodeProxy::builder(&c)
            .path("/org/lunlink/Initiator1/node/gone")
            .expect("path")
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .expect("node");
        let e = n.delete().await.unwrap_err();
        assert!(matches!(e, Error::ZBus(_)), "{e:?}");
        assert_eq!(
            e.bus_error_name().as_deref(),
            Some("org.freedesktop.DBus.Error.UnknownObject")
        );
        assert!(e.to_string().starts_with("the object is gone"), "{e}");
    });
}
