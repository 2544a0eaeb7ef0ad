//! Client proxies for the lunlink interfaces, with the exact signatures of `dbus/API.md`.
//!
//! Every call returns [`crate::Error`], so a named lunlink error arrives as its variant.
//! Node, Session and Lun objects have no fixed path: build their proxies with
//! `XxxProxy::builder(&conn).path(path)?.build().await` from a path found through
//! [`ObjectManagerProxy::get_managed_objects`] or a Manager call.

use std::collections::HashMap;

use zbus::proxy;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::Error;

/// Reply of `GetManagedObjects`: path -> interface name -> property name -> value.
pub type ManagedObjects = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedValue>>>;

/// `org.freedesktop.DBus.ObjectManager` on lunlinkd's root object: every node, session and
/// LUN with all their properties in one call.
#[proxy(
    interface = "org.freedesktop.DBus.ObjectManager",
    default_service = "org.lunlink.Initiator1",
    default_path = "/org/lunlink/Initiator1"
)]
pub trait ObjectManager {
    /// All objects below the root with their interfaces and properties.
    fn get_managed_objects(&self) -> Result<ManagedObjects, Error>;
}

/// `org.lunlink.Initiator1.Manager` on the root object.
#[proxy(
    interface = "org.lunlink.Initiator1.Manager",
    default_service = "org.lunlink.Initiator1",
    default_path = "/org/lunlink/Initiator1"
)]
pub trait Manager {
    /// SendTargets discovery (RFC 7143 §13.3, Appendix C) on `portal` ("host[:port]");
    /// returns (target, "host:port", tpgt) per reported portal and creates nodes for new ones.
    fn discover(
        &self,
        portal: &str,
        options: &HashMap<&str, Value<'_>>,
    ) -> Result<Vec<(String, String, u16)>, Error>;

    /// Log in to a node; an empty `portal` means every known portal of `target`.
    /// Returns the (first) session.
    fn login(
        &self,
        target: &str,
        portal: &str,
        options: &HashMap<&str, Value<'_>>,
    ) -> Result<OwnedObjectPath, Error>;

    /// Log in to every node (or only the automatic ones); returns the sessions.
    fn login_all(&self, options: &HashMap<&str, Value<'_>>) -> Result<Vec<OwnedObjectPath>, Error>;

    /// Give the initiator a new iSCSI name; `InUse` while sessions exist, `NotSupported` when
    /// the config file sets it.
    fn set_initiator_name(&self, name: &str) -> Result<(), Error>;

    /// Log in to every node (or only the automatic ones), in parallel; one result per node:
    /// (node, session or "/", D-Bus error name or "", message or "").
    fn login_all_with_results(
        &self,
        options: &HashMap<&str, Value<'_>>,
    ) -> Result<Vec<(OwnedObjectPath, OwnedObjectPath, String, String)>, Error>;

    /// Log out of a session (RFC 7143 §11.14); `InUse` while a device is held, unless `force`.
    fn logout(
        &self,
        session: &ObjectPath<'_>,
        options: &HashMap<&str, Value<'_>>,
    ) -> Result<(), Error>;

    /// Create a static node without discovery.
    fn create_node(
        &self,
        target: &str,
        portal: &str,
        options: &HashMap<&str, Value<'_>>,
    ) -> Result<OwnedObjectPath, Error>;

    /// Set default credentials for `scope` `session` or `discovery`.
    fn set_default_auth(
        &self,
        scope: &str,
        options: &HashMap<&str, Value<'_>>,
    ) -> Result<(), Error>;

    /// iSCSI name of this initiator (RFC 7143 §13.5, InitiatorName).
    #[zbus(property)]
    fn initiator_name(&self) -> Result<String, Error>;

    /// Version of lunlinkd.
    #[zbus(property)]
    fn version(&self) -> Result<String, Error>;

    /// Default AuthMethod for sessions (`none` or `chap`).
    #[zbus(property)]
    fn default_auth_method(&self) -> Result<String, Error>;

    /// Default CHAP name for sessions.
    #[zbus(property)]
    fn default_username(&self) -> Result<String, Error>;

    /// AuthMethod for discovery sessions.
    #[zbus(property)]
    fn discovery_auth_method(&self) -> Result<String, Error>;

    /// CHAP name for discovery sessions.
    #[zbus(property)]
    fn discovery_username(&self) -> Result<String, Error>;
}

/// `org.lunlink.Initiator1.Node`: a target name reached through one portal.
#[proxy(
    interface = "org.lunlink.Initiator1.Node",
    default_service = "org.lunlink.Initiator1"
)]
pub trait Node {
    /// Log in to this node; returns the session (an existing one if already logged in).
    fn login(&self, options: &HashMap<&str, Value<'_>>) -> Result<OwnedObjectPath, Error>;

    /// Change settings; returns `now` or `next-login`.
    fn update(&self, options: &HashMap<&str, Value<'_>>) -> Result<String, Error>;

    /// Forget this node; `InUse` while logged in.
    fn delete(&self) -> Result<(), Error>;

    /// iSCSI target name (RFC 7143 §13.4, TargetName).
    #[zbus(property)]
    fn target(&self) -> Result<String, Error>;

    /// Portal "host:port".
    #[zbus(property)]
    fn portal(&self) -> Result<String, Error>;

    /// Target portal group tag (RFC 7143 §13.9).
    #[zbus(property)]
    fn tpgt(&self) -> Result<u16, Error>;

    /// `manual` or `automatic`.
    #[zbus(property)]
    fn startup(&self) -> Result<String, Error>;

    /// `none` or `chap`.
    #[zbus(property)]
    fn auth_method(&self) -> Result<String, Error>;

    /// CHAP name sent to the target.
    #[zbus(property)]
    fn username(&self) -> Result<String, Error>;

    /// Name the target must send (mutual CHAP).
    #[zbus(property)]
    fn reverse_username(&self) -> Result<String, Error>;

    /// The session, or "/" when not logged in.
    #[zbus(property)]
    fn session(&self) -> Result<OwnedObjectPath, Error>;
}

/// `org.lunlink.Initiator1.Session`: one iSCSI session (RFC 7143 §4.1, one connection).
#[proxy(
    interface = "org.lunlink.Initiator1.Session",
    default_service = "org.lunlink.Initiator1"
)]
pub trait Session {
    /// Log out; `InUse` while a device is held, unless `force`.
    fn logout(&self, options: &HashMap<&str, Value<'_>>) -> Result<(), Error>;

    /// Scan the LUNs again (SPC REPORT LUNS).
    fn rescan(&self) -> Result<(), Error>;

    /// iSCSI target name.
    #[zbus(property)]
    fn target(&self) -> Result<String, Error>;

    /// Portal "host:port".
    #[zbus(property)]
    fn portal(&self) -> Result<String, Error>;

    /// The node this session belongs to.
    #[zbus(property)]
    fn node(&self) -> Result<OwnedObjectPath, Error>;

    /// `logging-in`, `logged-in`, `reconnecting`, `failed` or `logging-out`.
    #[zbus(property)]
    fn state(&self) -> Result<String, Error>;

    /// Initiator session id, 12 hex digits (RFC 7143 §11.12.5).
    #[zbus(property)]
    fn isid(&self) -> Result<String, Error>;

    /// Target session identifying handle (RFC 7143 §11.12.6).
    #[zbus(property)]
    fn tsih(&self) -> Result<u16, Error>;

    /// Negotiated values by RFC 7143 key name (§13), e.g. `MaxBurstLength` (u).
    #[zbus(property)]
    fn parameters(&self) -> Result<HashMap<String, OwnedValue>, Error>;

    /// Timeouts in effect, in seconds (see API.md).
    #[zbus(property(emits_changed_signal = "const"))]
    fn timeouts(&self) -> Result<HashMap<String, OwnedValue>, Error>;

    /// The LUN objects of this session.
    #[zbus(property)]
    fn luns(&self) -> Result<Vec<OwnedObjectPath>, Error>;

    /// SCSI commands sent.
    /// Changes with every command, so it is never signalled: read it when needed.
    #[zbus(property(emits_changed_signal = "false"))]
    fn commands(&self) -> Result<u64, Error>;

    /// Bytes read from the target.
    /// Changes with every command, so it is never signalled: read it when needed.
    #[zbus(property(emits_changed_signal = "false"))]
    fn bytes_read(&self) -> Result<u64, Error>;

    /// Bytes written to the target.
    /// Changes with every command, so it is never signalled: read it when needed.
    #[zbus(property(emits_changed_signal = "false"))]
    fn bytes_written(&self) -> Result<u64, Error>;

    /// Commands that failed to their caller, after retries.
    /// Changes with every command, so it is never signalled: read it when needed.
    #[zbus(property(emits_changed_signal = "false"))]
    fn errors(&self) -> Result<u64, Error>;

    /// Commands sent again after a retryable SCSI status (UNIT ATTENTION, BUSY, ...).
    #[zbus(property(emits_changed_signal = "false"))]
    fn retries(&self) -> Result<u64, Error>;

    /// UNIT ATTENTION conditions the target reported.
    #[zbus(property(emits_changed_signal = "false"))]
    fn unit_attentions(&self) -> Result<u64, Error>;
}

/// `org.lunlink.Initiator1.Lun`: one logical unit of a session and its block device.
#[proxy(
    interface = "org.lunlink.Initiator1.Lun",
    default_service = "org.lunlink.Initiator1"
)]
pub trait Lun {
    /// LUN number (SAM-5 §4.7; single-level addressing).
    #[zbus(property)]
    fn lun(&self) -> Result<u16, Error>;

    /// T10 vendor identification (SPC-4 §6.6.2, standard INQUIRY).
    #[zbus(property)]
    fn vendor(&self) -> Result<String, Error>;

    /// Product identification (SPC-4 §6.6.2).
    #[zbus(property)]
    fn product(&self) -> Result<String, Error>;

    /// Product revision level (SPC-4 §6.6.2).
    #[zbus(property)]
    fn revision(&self) -> Result<String, Error>;

    /// Unit serial number (SPC-4 §7.8.17, VPD page 0x80).
    #[zbus(property)]
    fn serial(&self) -> Result<String, Error>;

    /// World wide identifier (SPC-4 §7.8.6, VPD page 0x83).
    #[zbus(property)]
    fn wwid(&self) -> Result<String, Error>;

    /// Vanished from the target while its device was in use (see API.md).
    #[zbus(property)]
    fn offline(&self) -> Result<bool, Error>;

    /// Capacity in bytes (SBC-3 §5.16, READ CAPACITY (16)).
    #[zbus(property)]
    fn size(&self) -> Result<u64, Error>;

    /// Logical block length in bytes.
    #[zbus(property)]
    fn block_size(&self) -> Result<u32, Error>;

    /// Write protected (SBC-3 §6.5.6, WP bit).
    #[zbus(property)]
    fn read_only(&self) -> Result<bool, Error>;

    /// Block device, e.g. `/dev/ublkb0`; empty when none.
    #[zbus(property)]
    fn device(&self) -> Result<String, Error>;

    /// Why there is no device; empty otherwise.
    #[zbus(property)]
    fn device_error(&self) -> Result<String, Error>;

    /// The session this LUN belongs to.
    #[zbus(property)]
    fn session(&self) -> Result<OwnedObjectPath, Error>;

    /// The target of the LUN's session.
    #[zbus(property)]
    fn target(&self) -> Result<String, Error>;

    /// The /dev/disk/by-path name of the block device; empty without a device.
    #[zbus(property)]
    fn by_path(&self) -> Result<String, Error>;

    /// The /dev/disk/by-id names of the block device; empty without a device or identifier.
    #[zbus(property)]
    fn by_id(&self) -> Result<Vec<String>, Error>;

    /// As a path of its logical unit: active, standby, failed or held-out.
    #[zbus(property)]
    fn path_state(&self) -> Result<String, Error>;

    /// Commands of the logical unit in flight on this path; read on demand.
    #[zbus(property(emits_changed_signal = "false"))]
    fn in_flight(&self) -> Result<u32, Error>;

    /// The LogicalUnit object this LUN is a path to.
    #[zbus(property(emits_changed_signal = "const"))]
    fn logical_unit(&self) -> Result<OwnedObjectPath, Error>;

    /// What holds the block device now (mounts, swap, LVM, MD), in words; read on demand.
    #[zbus(property(emits_changed_signal = "false"))]
    fn used_by(&self) -> Result<Vec<String>, Error>;
}

/// `org.lunlink.Initiator1.LogicalUnit`: one logical unit with all its paths.
#[proxy(
    interface = "org.lunlink.Initiator1.LogicalUnit",
    default_service = "org.lunlink.Initiator1"
)]
pub trait LogicalUnit {
    /// How IO is spread over the paths: failover, round-robin or queue-depth.
    fn set_policy(&self, policy: &str) -> Result<(), Error>;
    /// Fails at once the IO that waits for a usable path; how many waited.
    fn fail_queued_io(&self) -> Result<u32, Error>;
    #[zbus(property(emits_changed_signal = "const"))]
    fn wwid(&self) -> Result<String, Error>;
    #[zbus(property)]
    fn device(&self) -> Result<String, Error>;
    #[zbus(property)]
    fn paths(&self) -> Result<Vec<OwnedObjectPath>, Error>;
    #[zbus(property)]
    fn policy(&self) -> Result<String, Error>;
    /// optimal, degraded, queueing or failed.
    #[zbus(property)]
    fn state(&self) -> Result<String, Error>;
    #[zbus(property)]
    fn queued_io(&self) -> Result<u32, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::proxy::Defaults;

    fn iface<T: Defaults>() -> Option<String> {
        T::INTERFACE.as_ref().map(|i| i.to_string())
    }

    /// The proxy attributes need literals; they must equal the constants in `names`.
    #[test]
    fn proxy_literals_match_the_names() {
        assert_eq!(
            iface::<ManagerProxy<'_>>().as_deref(),
            Some(crate::MANAGER_INTERFACE)
        );
        assert_eq!(
            iface::<NodeProxy<'_>>().as_deref(),
            Some(crate::NODE_INTERFACE)
        );
        assert_eq!(
            iface::<SessionProxy<'_>>().as_deref(),
            Some(crate::SESSION_INTERFACE)
        );
        assert_eq!(
            iface::<LunProxy<'_>>().as_deref(),
            Some(crate::LUN_INTERFACE)
        );
        assert_eq!(
            iface::<ObjectManagerProxy<'_>>().as_deref(),
            Some(crate::OBJECT_MANAGER_INTERFACE)
        );
        for dest in [
            <ManagerProxy<'_> as Defaults>::DESTINATION,
            <NodeProxy<'_> as Defaults>::DESTINATION,
            <SessionProxy<'_> as Defaults>::DESTINATION,
            <LunProxy<'_> as Defaults>::DESTINATION,
            <ObjectManagerProxy<'_> as Defaults>::DESTINATION,
        ] {
            assert_eq!(
                dest.as_ref().map(|d| d.to_string()).as_deref(),
                Some(crate::BUS_NAME)
            );
        }
        for p in [
            <ManagerProxy<'_> as Defaults>::PATH,
            <ObjectManagerProxy<'_> as Defaults>::PATH,
        ] {
            assert_eq!(
                p.as_ref().map(|p| p.to_string()).as_deref(),
                Some(crate::ROOT_PATH)
            );
        }
        assert!(<NodeProxy<'_> as Defaults>::PATH.is_none());
    }
}
