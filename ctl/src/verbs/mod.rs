//! One verb a file. Each has `run(ctx, args)`; `Ctx` holds the bus connection and the
//! output settings.

pub mod discover;
pub mod login;
pub mod logout;
pub mod luns;
pub mod node;
pub mod nodes;
pub mod session;
pub mod sessions;
pub mod set_default_auth;
pub mod status;

use std::collections::HashMap;

use anyhow::Context as _;
use lunlink_dbus::zbus::{self, fdo, names::InterfaceName, proxy::CacheProperties};
use lunlink_dbus::zvariant::OwnedValue;
use lunlink_dbus::{
    Error as BusError, ManagerProxy, NodeProxy, ObjectManagerProxy, BUS_NAME, MANAGER_INTERFACE,
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
}

impl Ctx {
    /// The Manager on the root object.
    pub async fn manager(&self) -> Result<ManagerProxy<'_>, BusError> {
        // No property cache: a one-shot client would only pay for GetAll and a signal match.
        Ok(ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
    }

    /// The Node at `path`.
    pub async fn node(&self, path: &str) -> Result<NodeProxy<'_>, BusError> {
        Ok(NodeProxy::builder(&self.conn)
            .path(path.to_owned())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
    }

    /// The Session at `path`.
    pub async fn session(&self, path: &str) -> Result<lunlink_dbus::SessionProxy<'_>, BusError> {
        Ok(lunlink_dbus::SessionProxy::builder(&self.conn)
            .path(path.to_owned())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
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
