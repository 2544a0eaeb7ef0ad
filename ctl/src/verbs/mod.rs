//! One verb a file. Each has `run(ctx, args)`; `Ctx` holds the bus connection and the
//! output settings.

pub mod discover;
pub mod import;
pub mod login;
pub mod logout;
pub mod luns;
pub mod lus;
pub mod node;
pub mod nodes;
pub mod session;
pub mod sessions;
pub mod set_default_auth;
pub mod set_initiator_name;
pub mod status;

use std::collections::HashMap;

use anyhow::Context as _;
use lunlink_dbus::zbus::{self, fdo, names::InterfaceName, proxy::CacheProperties};
use lunlink_dbus::zvariant::OwnedValue;
use lunlink_dbus::{
    Error as BusError, ObjectManagerProxy, BUS_NAME, MANAGER_INTERFACE,
    ROOT_PATH,
};

use crate::model::Snapshot;
use crate::output::Output;

/// What every verb gets.
pub struct Ctx {
    /// Connection to the bus lunlinkd is on.
    pub conn: zbus::Connection,
    /// `--json` / `--no-legend`.
    pub out: Output,
    /// Whether polkit may ask for a password (not `--no-ask-password`).
    pub ask_password: bool,
}

impl Ctx {
    /// Calls a method that changes something: with ALLOW_INTERACTIVE_AUTHORIZATION and a
    /// pkttyagent on this terminal for the call's length, unless `--no-ask-password`.
    pub async fn act<B, R>(&self, path: &str, interface: &str, method: &str, body: &B) -> Result<R, BusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let proxy = zbus::Proxy::new(&self.conn, BUS_NAME, path.to_owned(), interface.to_owned()).await?;
        let mut flags = enumflags2::BitFlags::empty();
        let _agent = if self.ask_password {
            flags |= zbus::proxy::MethodFlags::AllowInteractiveAuth;
            crate::agent::start()
        } else {
            None
        };
        let r: Option<R> = proxy.call_with_flags(method, flags, body).await?;
        r.ok_or_else(|| BusError::Failed(format!("{method} returned no reply")))
    }

    /// Every node, session and LUN, in one call.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let om = ObjectManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(BusError::from)
            .context("cannot list lunlinkd's objects")?;
        let objects = om
            .get_managed_objects()
            .await
            .context("cannot list lunlinkd's objects")?;
        Ok(Snapshot::from_objects(&objects))
    }

    /// All properties of the Manager, in one call.
    pub async fn manager_properties(&self) -> Result<HashMap<String, OwnedValue>, BusError> {
        let props = fdo::PropertiesProxy::builder(&self.conn)
            .destination(BUS_NAME)?
            .path(ROOT_PATH)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        Ok(props
            .get_all(InterfaceName::from_static_str_unchecked(MANAGER_INTERFACE))
            .await?)
    }
}
