//! Shared harness for lunlink's integration tests: real targets and buses on loopback.
//!
//! - [`Tgtd`]: a private tgtd instance (Debian's `tgt`) on a free 127.0.0.1 port, with tgtadm
//!   wrappers for targets, LUNs, CHAP, portals, connections and fault injection, and
//!   [`TargetSpec`] to re-create targets after [`Tgtd::restart`].
//! - [`Bus`]: a private dbus-daemon with a system-bus policy.
//! - [`FakeTarget`]: a scriptable misbehaving target (silent, lying, refusing), for the cases
//!   where the target is what misbehaves.
//! - [`Proxy`]: a loopback TCP proxy, a second path to a target that can be silenced or reset.
//! - [`iscsi_ls`] and friends: libiscsi's tools as a reference initiator.
//! - [`wait_until`], [`free_loopback_port`], [`require_tools`], [`run_with_timeout`].
//!
//! Rules the helpers enforce: readiness is polled with a deadline (no fixed sleeps), nothing
//! listens beyond loopback, a missing tool fails the test with a pointer to
//! `scripts/install-deps` instead of skipping it. Needs root (tgtd), no async runtime.

mod bus;
mod fake_target;
mod libiscsi;
mod lock;
mod proxy;
mod tgtd;
mod util;

pub use bus::Bus;
pub use fake_target::{AluaArray, FakeTarget, Fault, FAKE_LUN_BYTES, FAKE_TARGET_NAME};
pub use libiscsi::{iscsi_ls, iscsi_ls_size_label, parse_iscsi_ls, ListedLun, ListedTarget};
pub use proxy::Proxy;
pub use lock::{free_loopback_port, reserve_loopback_port, PortLease, LOCK_DIR};
pub use tgtd::{LunSpec, TargetSpec, TgtError, Tgtd};
pub use util::{
    file_tail, find_tool, poll_until, require_root, require_tools, run_with_timeout, tool_path,
    wait_until, CmdOutput,
};
