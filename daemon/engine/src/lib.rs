//! lunlink's session engine: drives the no-I/O protocol core (`lunlink-proto`) over TCP with
//! tokio. Callers see sessions and SCSI commands, never PDUs.
//!
//! ```text
//!  caller ──execute()──▶ slot table ──notify──▶ connection task ──TCP──▶ target
//!     ▲                      │                         │
//!     └──── waker ◀── outcome┘◀── Data-In / Response ──┘
//! ```

mod buf;
mod conn;
mod discovery;
mod error;
mod ops;
mod sendq;
mod transport;
mod session;
mod slots;

pub use conn::{ConnExit, Stats};
pub use discovery::discover;
pub use error::{CommandError, EngineError};
pub use ops::{LunInfo, ScsiOpError};
pub use buf::{DataBuf, IoBuf, RawIoBuf};
pub use session::{Completion, LinkState, Session, SessionConfig, SessionEvent, SessionInfo, Timeouts};
pub use slots::SENSE_MAX;

// Re-exported so callers configure sessions without depending on the core crates directly.
pub use lunlink_proto::discovery::{DiscoveredTarget, Portal, TargetPortal};
pub use lunlink_proto::chap::{ChapAlgorithm, ChapConfig, Secret};
pub use lunlink_proto::login::Auth;
pub use lunlink_proto::negotiate::{Digest, Offer, SessionParams};
