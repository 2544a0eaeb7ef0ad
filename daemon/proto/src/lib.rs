//! lunlink's iSCSI protocol core (RFC 7143), without I/O: no sockets, no async runtime, no
//! clock. Callers feed bytes and time in and take PDUs and decisions out, so every piece here is
//! testable in memory and fuzzable.

pub mod chap;
pub mod discovery;
pub mod login;
pub mod lun;
pub mod negotiate;
pub mod pdu;
pub mod serial;
pub mod text;
pub mod window;

pub use pdu::{Header, Pdu, PduError};
