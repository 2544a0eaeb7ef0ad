//! The errors of the SCSI layer.
//!
//! - [`DataError`]: data from the target (or a caller's buffer) that cannot be used as it is.
//! - [`ScsiError`]: a command that did not succeed, classified once here so that the session
//!   engine (retry or not) and the ublk device layer (which errno) agree.

use crate::sense::{Sense, SenseKey};
use crate::status::Status;

/// Malformed, short or truncated SCSI data, or a caller buffer too small to build into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Fewer bytes than the fixed part of the structure.
    #[error("{what} is too short: {got} bytes, at least {needed} needed")]
    Short {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// The target had more to return than the allocation length allowed: reissue the command
    /// with an allocation length of at least `needed`.
    #[error(
        "{what} was cut short: the target has {needed} bytes but {got} arrived; a larger allocation length is needed"
    )]
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// The data contradicts itself or the standard.
    #[error("{what} is invalid: {reason}")]
    Invalid { what: &'static str, reason: &'static str },
    /// READ CAPACITY(10) cannot express this LU's size (SBC-3 §5.15.2).
    #[error("the logical unit has more than 2^32 - 1 blocks; READ CAPACITY(16) is needed to size it")]
    NeedsReadCapacity16,
    /// A VPD page other than the one asked for came back.
    #[error("{what}: the target returned VPD page 0x{got:02x} instead of 0x{expected:02x}")]
    WrongPage { what: &'static str, expected: u8, got: u8 },
    /// Sense data in a format this initiator does not decode (vendor specific 0x7f, or not
    /// sense data at all).
    #[error("sense data in unsupported format (response code 0x{0:02x})")]
    UnsupportedSenseFormat(u8),
    /// The caller's buffer cannot hold what is to be written into it.
    #[error("buffer too small for {what}: {needed} bytes needed, {got} available")]
    BufferTooSmall {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// More items than one command can carry.
    #[error("too many {what}: {count}, at most {max} fit in one command")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

/// A command that did not complete successfully, by SCSI status and sense data.
///
/// Built with [`ScsiError::check`] from the status and sense bytes of a SCSI Response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScsiError {
    /// CHECK CONDITION with decodable sense data.
    #[error("the device reported {0}")]
    CheckCondition(Sense),
    /// CHECK CONDITION whose sense data is missing or cannot be decoded.
    #[error("the device reported CHECK CONDITION without usable sense data: {0}")]
    BadSense(DataError),
    #[error("the device is busy (status BUSY)")]
    Busy,
    #[error("the device's command queue is full (status TASK SET FULL)")]
    TaskSetFull,
    #[error("reservation conflict: another host holds a SCSI reservation on this logical unit")]
    ReservationConflict,
    #[error("the target aborted the command on behalf of another initiator (status TASK ABORTED)")]
    TaskAborted,
    /// We never set NACA, so a target reporting ACA ACTIVE is confused.
    #[error("unexpected status ACA ACTIVE (this initiator never requests ACA)")]
    AcaActive,
    #[error("unexpected SCSI status 0x{0:02x}")]
    OtherStatus(u8),
    /// The command succeeded but its data cannot be used.
    #[error("the device returned unusable data: {0}")]
    Malformed(#[from] DataError),
}

impl ScsiError {
    /// Classifies a command's outcome from its SCSI status byte and sense data (the sense bytes
    /// of the SCSI Response data segment, RFC 7143 §11.4.7; empty when none came).
    ///
    /// Ok for GOOD and CONDITION MET, and for CHECK CONDITION with RECOVERED ERROR: the command
    /// completed and the device only reports that it had to work for it (SPC-4 §4.5.6, as
    /// Linux's `scsi_io_completion` treats it). The caller may still want to log that sense.
    pub fn check(status: u8, sense: &[u8]) -> Result<(), ScsiError> {
        match Status::from(status) {
            Status::Good | Status::ConditionMet => Ok(()),
            Status::CheckCondition => match Sense::parse(sense) {
                Ok(s) if s.key == SenseKey::RecoveredError => Ok(()),
                Ok(s) => Err(ScsiError::CheckCondition(s)),
                Err(e) => Err(ScsiError::BadSense(e)),
            },
            Status::Busy => Err(ScsiError::Busy),
            Status::TaskSetFull => Err(ScsiError::TaskSetFull),
            Status::ReservationConflict => Err(ScsiError::ReservationConflict),
            Status::TaskAborted => Err(ScsiError::TaskAborted),
            Status::AcaActive => Err(ScsiError::AcaActive),
            Status::Other(b) => Err(ScsiError::OtherStatus(b)),
        }
    }

    /// The sense data, for CHECK CONDITION.
    pub fn sense(&self) -> Option<&Sense> {
        match self {
            ScsiError::CheckCondition(s) => Some(s),
            _ => None,
        }
    }

    /// True when sending the same command again, on the same path, may succeed. Callers bound
    /// the number of retries: tgtd, for one, reports an offline LU as "becoming ready" forever.
    ///
    /// Retryable, as in Linux's `scsi_check_sense` / `scsi_decide_disposition`:
    /// - UNIT ATTENTION (the condition is cleared by being reported);
    /// - deferred errors: the current command was not processed (SPC-4 §4.5.5);
    /// - NOT READY 04/xx for transient states (becoming ready, format, rebuild, recalculation,
    ///   operation, long write, self-test, ALUA transition, space allocation, start/stop,
    ///   sanitize, configuration, depopulation in progress);
    /// - ABORTED COMMAND, except protection information errors (ASC 0x10) which would recur;
    /// - BUSY, TASK SET FULL, TASK ABORTED;
    /// - CHECK CONDITION without usable sense (Linux gets the sense again and retries).
    pub fn is_retryable(&self) -> bool {
        match self {
            ScsiError::CheckCondition(s) => {
                if !s.current {
                    return true;
                }
                match s.key {
                    SenseKey::UnitAttention => true,
                    SenseKey::NotReady => {
                        s.asc == 0x04
                            && matches!(
                                s.ascq,
                                0x01 | 0x04
                                    | 0x05
                                    | 0x06
                                    | 0x07
                                    | 0x08
                                    | 0x09
                                    | 0x0a
                                    | 0x14
                                    | 0x1a
                                    | 0x1b
                                    | 0x1d
                                    | 0x24
                            )
                    }
                    SenseKey::AbortedCommand => s.asc != 0x10,
                    _ => false,
                }
            }
            ScsiError::BadSense(_) | ScsiError::Busy | ScsiError::TaskSetFull | ScsiError::TaskAborted => true,
            ScsiError::ReservationConflict
            | ScsiError::AcaActive
            | ScsiError::OtherStatus(_)
            | ScsiError::Malformed(_) => false,
        }
    }

    /// The errno (positive; ublk wants it negated) to complete a block request with once
    /// retries are over. Values follow Linux's SCSI midlayer and its `blk_status_t` table, so
    /// that applications and dm-multipath see what they would see with the kernel initiator:
    ///
    /// | condition | errno | Linux equivalent |
    /// |---|---|---|
    /// | 27/07 space allocation failed (thin pool full), 55/03, 55/06, 55/07 out of resources or quota | `ENOSPC` | `DID_ALLOC_FAILURE`, `BLK_STS_NOSPC` |
    /// | other DATA PROTECT (write protected) | `EROFS` | (block layer reports `EIO`) |
    /// | any key with ASC 0x10, protection information check failed | `EILSEQ` | `BLK_STS_PROTECTION` |
    /// | MEDIUM ERROR | `ENODATA` | `BLK_STS_MEDIUM` |
    /// | ILLEGAL REQUEST 20/00 invalid command operation code | `EOPNOTSUPP` | `BLK_STS_NOTSUPP` |
    /// | ILLEGAL REQUEST 25/00 logical unit not supported (LU removed) | `ENODEV` | `BLK_STS_OFFLINE` |
    /// | other ILLEGAL REQUEST (LBA out of range, invalid field ...) | `EREMOTEIO` | `BLK_STS_TARGET` |
    /// | NOT READY 04/0B, 04/0C: this target port is in ALUA standby/unavailable state | `ENOLINK` | `BLK_STS_TRANSPORT` |
    /// | NOT READY 3a/xx medium not present | `ENOMEDIUM` | (block layer reports `EIO`) |
    /// | RESERVATION CONFLICT | `EBADE` | `BLK_STS_RESV_CONFLICT` |
    /// | everything else (UNIT ATTENTION, BUSY, HARDWARE ERROR, ...) | `EIO` | `BLK_STS_IOERR` |
    ///
    /// Two consequences of Linux's `errno_to_blk_status` apply to ublk: `EROFS` and
    /// `ENOMEDIUM` reach applications as `EIO`; and dm-multipath (`blk_path_error`) retries
    /// `EIO` and `ENOLINK` on another path but not `ENOSPC`, `EILSEQ`, `ENODATA`, `EOPNOTSUPP`,
    /// `EREMOTEIO` or `EBADE`, which a different path to the same LU would only repeat.
    pub fn errno(&self) -> i32 {
        let ScsiError::CheckCondition(s) = self else {
            return match self {
                ScsiError::ReservationConflict => libc::EBADE,
                _ => libc::EIO,
            };
        };
        match (s.key, s.asc, s.ascq) {
            (_, 0x27, 0x07) | (_, 0x55, 0x03 | 0x06 | 0x07) => libc::ENOSPC,
            (SenseKey::DataProtect, _, _) => libc::EROFS,
            (_, 0x10, _) => libc::EILSEQ,
            (SenseKey::MediumError, _, _) => libc::ENODATA,
            (SenseKey::IllegalRequest, 0x20, 0x00) => libc::EOPNOTSUPP,
            (SenseKey::IllegalRequest, 0x25, 0x00) => libc::ENODEV,
            (SenseKey::IllegalRequest, _, _) => libc::EREMOTEIO,
            (SenseKey::NotReady, 0x04, 0x0b | 0x0c) => libc::ENOLINK,
            (SenseKey::NotReady, 0x3a, _) => libc::ENOMEDIUM,
            _ => libc::EIO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(key: SenseKey, asc: u8, ascq: u8) -> ScsiError {
        ScsiError::CheckCondition(Sense::new(key, asc, ascq))
    }

    /// Fixed format sense bytes with the given key and ASC/ASCQ.
    fn fixed(key: u8, asc: u8, ascq: u8) -> [u8; 18] {
        [0x70, 0, key, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0]
    }

    #[test]
    fn check_statuses() {
        assert_eq!(ScsiError::check(0x00, &[]), Ok(()));
        assert_eq!(ScsiError::check(0x04, &[]), Ok(()));
        assert_eq!(ScsiError::check(0x08, &[]), Err(ScsiError::Busy));
        assert_eq!(ScsiError::check(0x18, &[]), Err(ScsiError::ReservationConflict));
        assert_eq!(ScsiError::check(0x28, &[]), Err(ScsiError::TaskSetFull));
        assert_eq!(ScsiError::check(0x30, &[]), Err(ScsiError::AcaActive));
        assert_eq!(ScsiError::check(0x40, &[]), Err(ScsiError::TaskAborted));
        assert_eq!(ScsiError::check(0x22, &[]), Err(ScsiError::OtherStatus(0x22)));
    }

    #[test]
    fn check_condition_decodes_sense() {
        let e = ScsiError::check(0x02, &fixed(0x06, 0x29, 0x00)).unwrap_err();
        assert!(matches!(e, ScsiError::CheckCondition(_)));
        assert_eq!(
            e.sense().map(|s| (s.key, s.asc, s.ascq)),
            Some((SenseKey::UnitAttention, 0x29, 0x00))
        );
        // Recovered error: the command completed.
        assert_eq!(ScsiError::check(0x02, &fixed(0x01, 0x17, 0x01)), Ok(()));
        // No sense data at all.
        let e = ScsiError::check(0x02, &[]).unwrap_err();
        assert!(matches!(e, ScsiError::BadSense(DataError::Short { .. })));
        assert!(e.is_retryable());
        assert_eq!(e.errno(), libc::EIO);
    }

    #[test]
    fn retryable() {
        assert!(cc(SenseKey::UnitAttention, 0x2a, 0x09).is_retryable());
        assert!(cc(SenseKey::NotReady, 0x04, 0x01).is_retryable());
        assert!(cc(SenseKey::NotReady, 0x04, 0x0a).is_retryable());
        assert!(!cc(SenseKey::NotReady, 0x04, 0x03).is_retryable());
        assert!(!cc(SenseKey::NotReady, 0x04, 0x0b).is_retryable());
        assert!(!cc(SenseKey::NotReady, 0x3a, 0x00).is_retryable());
        assert!(cc(SenseKey::AbortedCommand, 0x47, 0x00).is_retryable());
        assert!(!cc(SenseKey::AbortedCommand, 0x10, 0x01).is_retryable());
        assert!(!cc(SenseKey::MediumError, 0x11, 0x00).is_retryable());
        assert!(!cc(SenseKey::IllegalRequest, 0x24, 0x00).is_retryable());
        assert!(ScsiError::Busy.is_retryable());
        assert!(ScsiError::TaskSetFull.is_retryable());
        assert!(ScsiError::TaskAborted.is_retryable());
        assert!(!ScsiError::ReservationConflict.is_retryable());
        assert!(!ScsiError::OtherStatus(0x22).is_retryable());
        assert!(!ScsiError::Malformed(DataError::Invalid { what: "x", reason: "y" }).is_retryable());
        // A deferred medium error: the current command was never run.
        let mut s = Sense::new(SenseKey::MediumError, 0x0c, 0x00);
        s.current = false;
        assert!(ScsiError::CheckCondition(s).is_retryable());
    }

    #[test]
    fn errnos() {
        let table = [
            (cc(SenseKey::DataProtect, 0x27, 0x07), libc::ENOSPC),
            (cc(SenseKey::IllegalRequest, 0x55, 0x03), libc::ENOSPC),
            (cc(SenseKey::DataProtect, 0x27, 0x00), libc::EROFS),
            (cc(SenseKey::DataProtect, 0x27, 0x02), libc::EROFS),
            (cc(SenseKey::AbortedCommand, 0x10, 0x01), libc::EILSEQ),
            (cc(SenseKey::MediumError, 0x11, 0x00), libc::ENODATA),
            (cc(SenseKey::MediumError, 0x0c, 0x00), libc::ENODATA),
            (cc(SenseKey::IllegalRequest, 0x20, 0x00), libc::EOPNOTSUPP),
            (cc(SenseKey::IllegalRequest, 0x25, 0x00), libc::ENODEV),
            (cc(SenseKey::IllegalRequest, 0x21, 0x00), libc::EREMOTEIO),
            (cc(SenseKey::IllegalRequest, 0x24, 0x00), libc::EREMOTEIO),
            (cc(SenseKey::NotReady, 0x04, 0x0c), libc::ENOLINK),
            (cc(SenseKey::NotReady, 0x3a, 0x00), libc::ENOMEDIUM),
            (cc(SenseKey::NotReady, 0x04, 0x01), libc::EIO),
            (cc(SenseKey::UnitAttention, 0x29, 0x00), libc::EIO),
            (cc(SenseKey::HardwareError, 0x44, 0x00), libc::EIO),
            (ScsiError::ReservationConflict, libc::EBADE),
            (ScsiError::Busy, libc::EIO),
            (ScsiError::TaskSetFull, libc::EIO),
            (ScsiError::OtherStatus(0x22), libc::EIO),
        ];
        for (e, errno) in table {
            assert_eq!(e.errno(), errno, "{e}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            cc(SenseKey::DataProtect, 0x27, 0x07).to_string(),
            "the device reported DATA PROTECT: space allocation failed write protect \
             (thin provisioned pool out of space) (asc/ascq 27/07)"
        );
        assert_eq!(
            DataError::Truncated { what: "REPORT LUNS data", needed: 24, got: 16 }.to_string(),
            "REPORT LUNS data was cut short: the target has 24 bytes but 16 arrived; a larger allocation length is needed"
        );
    }
}
