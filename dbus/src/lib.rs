//! D-Bus names, types and proxies of lunlink, shared by `lunlinkd` and `lunlinkctl`.
//!
//! The API itself is specified in `dbus/API.md`; this crate is its Rust form:
//! - [`names`]: bus name, object paths, interface names, error prefix;
//! - [`Error`]: the named D-Bus errors (`org.lunlink.Initiator1.Error.*`);
//! - [`options`]: the `a{sv}` options dictionaries, built by clients and checked by the daemon;
//! - [`values`]: the closed string vocabularies (`manual`/`automatic`, `crc32c`, ...);
//! - [`proxy`]: `#[zbus::proxy]` traits for the four interfaces and the ObjectManager;
//! - [`BusChoice`]: which bus to connect to (`system`, `session` or an address).

mod bus;
mod error;
pub mod names;
pub mod options;
pub mod proxy;
pub mod values;

pub use bus::BusChoice;
pub use error::Error;
pub use names::*;
pub use options::{Call, Options, OptionsDict};
pub use proxy::{
    LogicalUnitProxy, LunProxy, ManagedObjects, ManagerProxy, NodeProxy, ObjectManagerProxy, SessionProxy,
};

/// Re-exported so that users of this crate name the same zbus and zvariant versions.
pub use zbus;
pub use zbus::zvariant;
