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

/// What to do with a command that did not succeed (see [`ScsiError::disposition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Send it again at once: the condition is cleared by being reported (UNIT ATTENTION) or
    /// the command was not processed. Retries are counted and bounded.
    RetryNow,
    /// Send it again after a pause (BUSY, NOT READY while becoming ready or in an ALUA
    /// transition), with backoff, until the command timeout.
    RetryLater,
    /// TASK SET FULL: like `RetryLater`, and send fewer commands at once for a while.
    QueueFull,
    /// Fails on this path; another path to the same logical unit may succeed.
    PathError,
    /// Fails; any path would give the same answer (medium, protection, space, invalid
    /// request, reservation conflict).
    TargetError,
}

impl Disposition {
    pub fn is_retry(self) -> bool {
        matches!(self, Disposition::RetryNow | Disposition::RetryLater | Disposition::QueueFull)
    }
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

    /// True when sending the same command again, on the same path, may succeed (see
    /// [`ScsiError::disposition`]). Callers bound the retries: tgtd, for one, reports an
    /// offline LU as "becoming ready" forever.
    pub fn is_retryable(&self) -> bool {
        self.disposition().is_retry()
    }

    /// What to do with a command that ended with this error: the table Linux's SCSI midlayer
    /// applies in `scsi_decide_disposition` / `scsi_check_sense`, with its `blk_path_error`
    /// split of final failures into path and target errors (which multipath needs: a path
    /// error may succeed through another path to the same LU, a target error would only
    /// repeat there).
    ///
    /// | outcome | disposition | Linux |
    /// |---|---|---|
    /// | UNIT ATTENTION (any ASC: reporting clears it) | `RetryNow` | `NEEDS_RETRY` |
    /// | deferred error (SPC-4 §4.5.5: this command was not processed) | `RetryNow` | `NEEDS_RETRY` |
    /// | NO SENSE, ABORTED COMMAND (except ASC 0x10), TASK ABORTED, unusable sense | `RetryNow` | `NEEDS_RETRY` |
    /// | NOT READY 04/01,04,05,06,07,08,09,14,1a,1b,1d,24 (in progress, becoming ready) and 04/0a (ALUA transition) | `RetryLater` | `ADD_TO_MLQUEUE` |
    /// | BUSY | `RetryLater` | `ADD_TO_MLQUEUE` |
    /// | TASK SET FULL | `QueueFull` | `ADD_TO_MLQUEUE`, queue depth lowered |
    /// | NOT READY 04/0b, 04/0c (ALUA standby, unavailable), other NOT READY | `PathError` | `BLK_STS_TRANSPORT` / `IOERR` |
    /// | ACA ACTIVE, unknown status | `PathError` | `BLK_STS_IOERR` |
    /// | MEDIUM ERROR 11/xx, 13/xx, 14/xx | `TargetError` | `DID_MEDIUM_ERROR` |
    /// | other MEDIUM ERROR | `PathError` | `BLK_STS_IOERR` |
    /// | HARDWARE ERROR, DATA PROTECT, BLANK CHECK, COPY ABORTED, VOLUME OVERFLOW, MISCOMPARE | `TargetError` | `DID_TARGET_FAILURE` |
    /// | ILLEGAL REQUEST 20,21,22,24,26,27/xx | `TargetError` | `DID_TARGET_FAILURE` |
    /// | other ILLEGAL REQUEST (e.g. 25/00 LU not supported) | `PathError` | `BLK_STS_IOERR` |
    /// | ABORTED COMMAND 10/xx (protection information) | `TargetError` | `BLK_STS_PROTECTION` |
    /// | any key with ASC 27/07 or 55/03,06,07 (no space) | `TargetError` | `BLK_STS_NOSPC` |
    /// | RESERVATION CONFLICT | `TargetError` | `BLK_STS_RESV_CONFLICT` |
    /// | data that cannot be used | `TargetError` | |
    pub fn disposition(&self) -> Disposition {
        let s = match self {
            ScsiError::CheckCondition(s) => s,
            ScsiError::BadSense(_) | ScsiError::TaskAborted => return Disposition::RetryNow,
            ScsiError::Busy => return Disposition::RetryLater,
            ScsiError::TaskSetFull => return Disposition::QueueFull,
            ScsiError::ReservationConflict | ScsiError::Malformed(_) => return Disposition::TargetError,
            ScsiError::AcaActive | ScsiError::OtherStatus(_) => return Disposition::PathError,
        };
        if !s.current {
            return Disposition::RetryNow;
        }
        if matches!((s.asc, s.ascq), (0x27, 0x07) | (0x55, 0x03 | 0x06 | 0x07)) {
            return Disposition::TargetError;
        }
        match s.key {
            SenseKey::UnitAttention | SenseKey::NoSense => Disposition::RetryNow,
            SenseKey::AbortedCommand if s.asc == 0x10 => Disposition::TargetError,
            SenseKey::AbortedCommand => Disposition::RetryNow,
            SenseKey::NotReady
                if s.asc == 0x04
                    && matches!(
                        s.ascq,
                        0x01 | 0x04 | 0x05 | 0x06 | 0x07 | 0x08 | 0x09 | 0x0a | 0x14 | 0x1a | 0x1b | 0x1d | 0x24
                    ) =>
            {
                Disposition::RetryLater
            }
            SenseKey::NotReady => Disposition::PathError,
            SenseKey::MediumError if matches!(s.asc, 0x11 | 0x13 | 0x14) => Disposition::TargetError,
            SenseKey::MediumError => Disposition::PathError,
            SenseKey::IllegalRequest if matches!(s.asc, 0x20 | 0x21 | 0x22 | 0x24 | 0x26 | 0x27) => {
                Disposition::TargetError
            }
            SenseKey::IllegalRequest => Disposition::PathError,
            SenseKey::HardwareError
            | SenseKey::DataProtect
            | SenseKey::BlankCheck
            | SenseKey::CopyAborted
            | SenseKey::VolumeOverflow
            | SenseKey::Miscompare => Disposition::TargetError,
            _ => Disposition::PathError,
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

    /// The disposition table, row by row (see `ScsiError::disposition`).
    #[test]
    fn disposition_table() {
        use Disposition::*;
        use SenseKey::*;
        let rows: &[(ScsiError, Disposition)] = &[
            (cc(UnitAttention, 0x29, 0x00), RetryNow),
            (cc(UnitAttention, 0x2a, 0x06), RetryNow),
            (cc(UnitAttention, 0x3f, 0x0e), RetryNow),
            (cc(NoSense, 0x00, 0x00), RetryNow),
            (cc(AbortedCommand, 0x47, 0x00), RetryNow),
            (cc(AbortedCommand, 0x4b, 0x00), RetryNow),
            (cc(AbortedCommand, 0x10, 0x01), TargetError),
            (ScsiError::TaskAborted, RetryNow),
            (ScsiError::BadSense(DataError::Short { what: "sense", needed: 8, got: 0 }), RetryNow),
            (cc(NotReady, 0x04, 0x01), RetryLater),
            (cc(NotReady, 0x04, 0x04), RetryLater),
            (cc(NotReady, 0x04, 0x0a), RetryLater),
            (cc(NotReady, 0x04, 0x24), RetryLater),
            (cc(NotReady, 0x04, 0x02), PathError),
            (cc(NotReady, 0x04, 0x03), PathError),
            (cc(NotReady, 0x04, 0x0b), PathError),
            (cc(NotReady, 0x04, 0x0c), PathError),
            (cc(NotReady, 0x3a, 0x00), PathError),
            (ScsiError::Busy, RetryLater),
            (ScsiError::TaskSetFull, QueueFull),
            (ScsiError::AcaActive, PathError),
            (ScsiError::OtherStatus(0x22), PathError),
            (cc(MediumError, 0x11, 0x00), TargetError),
            (cc(MediumError, 0x13, 0x00), TargetError),
            (cc(MediumError, 0x14, 0x01), TargetError),
            (cc(MediumError, 0x0c, 0x00), PathError),
            (cc(HardwareError, 0x44, 0x00), TargetError),
            (cc(DataProtect, 0x27, 0x00), TargetError),
            (cc(DataProtect, 0x27, 0x07), TargetError),
            (cc(IllegalRequest, 0x55, 0x03), TargetError),
            (cc(BlankCheck, 0x00, 0x00), TargetError),
            (cc(CopyAborted, 0x00, 0x00), TargetError),
            (cc(VolumeOverflow, 0x00, 0x00), TargetError),
            (cc(Miscompare, 0x1d, 0x00), TargetError),
            (cc(IllegalRequest, 0x20, 0x00), TargetError),
            (cc(IllegalRequest, 0x21, 0x00), TargetError),
            (cc(IllegalRequest, 0x22, 0x00), TargetError),
            (cc(IllegalRequest, 0x24, 0x00), TargetError),
            (cc(IllegalRequest, 0x26, 0x00), TargetError),
            (cc(IllegalRequest, 0x27, 0x00), TargetError),
            (cc(IllegalRequest, 0x25, 0x00), PathError),
            (ScsiError::ReservationConflict, TargetError),
            (ScsiError::Malformed(DataError::Invalid { what: "x", reason: "y" }), TargetError),
        ];
        for (e, want) in rows {
            assert_eq!(e.disposition(), *want, "{e}");
        }
        // A deferred error of any kind: this command was never run.
        let mut s = Sense::new(MediumError, 0x11, 0x00);
        s.current = false;
        assert_eq!(ScsiError::CheckCondition(s).disposition(), RetryNow);
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
