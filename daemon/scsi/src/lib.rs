//! SCSI command set for the lunlink initiator, without I/O.
//!
//! What the session engine needs to talk to a logical unit and what the ublk device layer needs
//! to present it:
//!
//! - [`cdb`]: command descriptor blocks (SPC-4, SBC-3). Data-path builders return a [`Cdb`] by
//!   value and never allocate.
//! - [`inquiry`]: standard INQUIRY data and the VPD pages 0x00, 0x80, 0x83 (with the
//!   [`Wwid`] that identifies a logical unit for multipath), 0xB0, 0xB1, 0xB2.
//! - [`capacity`]: READ CAPACITY(10)/(16) data.
//! - [`report_luns`]: REPORT LUNS data and single-level LUN numbers (SAM-5 §4.7).
//! - [`mode`]: MODE SENSE(6)/(10) headers and the Caching mode page.
//! - [`alua`]: ALUA access states and REPORT TARGET PORT GROUPS data.
//! - [`sense`] and [`status`]: sense data and SCSI status codes.
//! - [`error`]: [`DataError`] for malformed data and [`ScsiError`], the classification of a
//!   failed command shared by the upper layers (retry or not, which errno).
//!
//! Every parser takes `&[u8]` of any length and returns a [`DataError`] rather than panicking.

mod bytes;

pub mod alua;
pub mod capacity;
pub mod cdb;
pub mod error;
pub mod inquiry;
pub mod mode;
pub mod report_luns;
pub mod sense;
pub mod status;

pub use alua::{AccessState, TargetPortGroup, TargetPortGroups};
pub use capacity::Capacity;
pub use cdb::{Cdb, DataDirection};
pub use error::{DataError, Disposition, ScsiError};
pub use inquiry::{
    BlockDeviceCharacteristics, BlockLimits, Designator, DeviceType, LogicalBlockProvisioning, StandardInquiry, Wwid,
};
pub use mode::{CachingPage, ModeHeader, ModePage, ModeSense};
pub use report_luns::{decode_lun, encode_lun, parse_report_luns};
pub use sense::{Sense, SenseKey};
pub use status::Status;

#[cfg(test)]
mod robustness;
