//! SCSI status codes (SAM-5 §5.3), as carried in the iSCSI SCSI Response PDU
//! (RFC 7143 §11.4.2).

use std::fmt;

/// The status byte a device server returns for a command. Obsolete and reserved codes are kept
/// as [`Status::Other`] so that nothing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0x00: the command completed.
    Good,
    /// 0x02: sense data describes why the command failed.
    CheckCondition,
    /// 0x04: PRE-FETCH found the blocks fit in the cache; a success.
    ConditionMet,
    /// 0x08: the logical unit cannot take the command now; retry later.
    Busy,
    /// 0x18: another I_T nexus holds a conflicting reservation.
    ReservationConflict,
    /// 0x28: the task set is full; retry once outstanding commands complete.
    TaskSetFull,
    /// 0x30: an ACA condition exists (we never set NACA, so this is unexpected).
    AcaActive,
    /// 0x40: the command was aborted because of another I_T nexus (TAS=1).
    TaskAborted,
    /// Any other value (obsolete INTERMEDIATE, COMMAND TERMINATED, reserved codes).
    Other(u8),
}

impl Status {
    /// True for the statuses that mean the command succeeded.
    pub fn is_good(self) -> bool {
        matches!(self, Status::Good | Status::ConditionMet)
    }
}

impl From<u8> for Status {
    fn from(b: u8) -> Self {
        match b {
            0x00 => Status::Good,
            0x02 => Status::CheckCondition,
            0x04 => Status::ConditionMet,
            0x08 => Status::Busy,
            0x18 => Status::ReservationConflict,
            0x28 => Status::TaskSetFull,
            0x30 => Status::AcaActive,
            0x40 => Status::TaskAborted,
            other => Status::Other(other),
        }
    }
}

impl From<Status> for u8 {
    fn from(s: Status) -> u8 {
        match s {
            Status::Good => 0x00,
            Status::CheckCondition => 0x02,
            Status::ConditionMet => 0x04,
            Status::Busy => 0x08,
            Status::ReservationConflict => 0x18,
            Status::TaskSetFull => 0x28,
            Status::AcaActive => 0x30,
            Status::TaskAborted => 0x40,
            Status::Other(b) => b,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Status::Good => "GOOD",
            Status::CheckCondition => "CHECK CONDITION",
            Status::ConditionMet => "CONDITION MET",
            Status::Busy => "BUSY",
            Status::ReservationConflict => "RESERVATION CONFLICT",
            Status::TaskSetFull => "TASK SET FULL",
            Status::AcaActive => "ACA ACTIVE",
            Status::TaskAborted => "TASK ABORTED",
            Status::Other(b) => return write!(f, "status 0x{b:02x}"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn codes_roundtrip() {
        let known = [
            (0x00, Status::Good),
            (0x02, Status::CheckCondition),
            (0x04, Status::ConditionMet),
            (0x08, Status::Busy),
            (0x18, Status::ReservationConflict),
            (0x28, Status::TaskSetFull),
            (0x30, Status::AcaActive),
            (0x40, Status::TaskAborted),
        ];
        for (b, s) in known {
            assert_eq!(Status::from(b), s);
            assert_eq!(u8::from(s), b);
        }
        for b in 0..=255u8 {
            assert_eq!(u8::from(Status::from(b)), b);
        }
        assert_eq!(Status::from(0x22), Status::Other(0x22));
    }
    #[test]
    fn good_and_display() {
        assert!(Status::Good.is_good());
        assert!(Status::ConditionMet.is_good());
        assert!(!Status::Busy.is_good());
        assert_eq!(Status::TaskSetFull.to_string(), "TASK SET FULL");
        assert_eq!(Status::Other(0x14).to_string(), "status 0x14");
    }
}
