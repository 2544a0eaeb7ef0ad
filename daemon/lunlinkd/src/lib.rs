//! lunlinkd's engine-side pieces that need no bus: configuration, node records and the
//! initiator name. `main.rs` and the D-Bus adaptor build on these.

pub mod authz;
pub mod config;
pub mod initiator_name;
pub mod manager;
pub mod nodes;
pub mod dbus_api;
pub mod device;
pub mod ublk_check;
