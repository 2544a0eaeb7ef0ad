//! Sense data (SPC-4 §4.5): fixed format (response codes 0x70/0x71, §4.5.3) and descriptor
//! format (0x72/0x73, §4.5.2), with readable text for the additional sense codes an initiator
//! commonly meets (SPC-4 Annex D).

use std::fmt;

use crate::bytes::{be32, be64};
use crate::error::DataError;

/// The sense key (SPC-4 §4.5.6, table 27): the broad class of the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SenseKey {
    NoSense = 0x0,
    RecoveredError = 0x1,
    NotReady = 0x2,
    MediumError = 0x3,
    HardwareError = 0x4,
    IllegalRequest = 0x5,
    UnitAttention = 0x6,
    DataProtect = 0x7,
    BlankCheck = 0x8,
    VendorSpecific = 0x9,
    CopyAborted = 0xa,
    AbortedCommand = 0xb,
    /// 0x0C: obsolete (EQUAL in SCSI-2).
    Equal = 0xc,
    VolumeOverflow = 0xd,
    Miscompare = 0xe,
    /// 0x0F: COMPLETED (SPC-5), formerly reserved.
    Completed = 0xf,
}

impl SenseKey {
    /// The key from the low four bits of `b`; every value names a key.
    pub fn from_nibble(b: u8) -> Self {
        match b & 0x0f {
            0x0 => SenseKey::NoSense,
            0x1 => SenseKey::RecoveredError,
            0x2 => SenseKey::NotReady,
            0x3 => SenseKey::MediumError,
            0x4 => SenseKey::HardwareError,
            0x5 => SenseKey::IllegalRequest,
            0x6 => SenseKey::UnitAttention,
            0x7 => SenseKey::DataProtect,
            0x8 => SenseKey::BlankCheck,
            0x9 => SenseKey::VendorSpecific,
            0xa => SenseKey::CopyAborted,
            0xb => SenseKey::AbortedCommand,
            0xc => SenseKey::Equal,
            0xd => SenseKey::VolumeOverflow,
            0xe => SenseKey::Miscompare,
            _ => SenseKey::Completed,
        }
    }

    /// The 4-bit code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name SPC gives the key, as storage admins know it from kernel logs.
    pub fn name(self) -> &'static str {
        match self {
            SenseKey::NoSense => "NO SENSE",
            SenseKey::RecoveredError => "RECOVERED ERROR",
            SenseKey::NotReady => "NOT READY",
            SenseKey::MediumError => "MEDIUM ERROR",
            SenseKey::HardwareError => "HARDWARE ERROR",
            SenseKey::IllegalRequest => "ILLEGAL REQUEST",
            SenseKey::UnitAttention => "UNIT ATTENTION",
            SenseKey::DataProtect => "DATA PROTECT",
            SenseKey::BlankCheck => "BLANK CHECK",
            SenseKey::VendorSpecific => "VENDOR SPECIFIC",
            SenseKey::CopyAborted => "COPY ABORTED",
            SenseKey::AbortedCommand => "ABORTED COMMAND",
            SenseKey::Equal => "EQUAL (obsolete)",
            SenseKey::VolumeOverflow => "VOLUME OVERFLOW",
            SenseKey::Miscompare => "MISCOMPARE",
            SenseKey::Completed => "COMPLETED",
        }
    }
}

impl fmt::Display for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where in the CDB or parameter list an ILLEGAL REQUEST found the bad field (SPC-4 §4.5.2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// True when the field is in the CDB, false when in the parameter list sent as data.
    pub in_cdb: bool,
    pub byte: u16,
    /// The bit within the byte, when the device server reported it.
    pub bit: Option<u8>,
}

/// Decoded sense data. Both formats map to the same fields; absent fields are None or zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// False for a deferred error: it belongs to an earlier command, and the command that
    /// received it was not processed (SPC-4 §4.5.5).
    pub current: bool,
    /// True when the device sent descriptor format (0x72/0x73).
    pub descriptor_format: bool,
    pub key: SenseKey,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// The INFORMATION field when marked valid: for READ and WRITE, the first failing LBA.
    pub information: Option<u64>,
    /// The COMMAND-SPECIFIC INFORMATION field, when present.
    pub command_specific: Option<u64>,
    /// The three SENSE KEY SPECIFIC bytes, only when SKSV marks them valid.
    pub sense_key_specific: Option<[u8; 3]>,
    /// Field replaceable unit code (0: none reported).
    pub fru: u8,
    pub filemark: bool,
    pub eom: bool,
    /// Incorrect length indicator.
    pub ili: bool,
}

impl Sense {
    /// Current sense with only a key and additional sense code, as a target would send it
    /// without optional fields.
    pub fn new(key: SenseKey, asc: u8, ascq: u8) -> Self {
        Sense {
            current: true,
            descriptor_format: false,
            key,
            asc,
            ascq,
            information: None,
            command_specific: None,
            sense_key_specific: None,
            fru: 0,
            filemark: false,
            eom: false,
            ili: false,
        }
    }

    /// Decodes sense data of any length. Fields past the additional sense length or past the
    /// end of `b` read as absent, like Linux's `scsi_normalize_sense`: targets truncate sense
    /// data, and a key with an ASC is still worth having.
    pub fn parse(b: &[u8]) -> Result<Self, DataError> {
        let first = *b.first().ok_or(DataError::Short {
            what: "sense data",
            needed: 1,
            got: 0,
        })?;
        match first & 0x7f {
            0x70 => Self::parse_fixed(b, true),
            0x71 => Self::parse_fixed(b, false),
            0x72 => Self::parse_descriptor(b, true),
            0x73 => Self::parse_descriptor(b, false),
            other => Err(DataError::UnsupportedSenseFormat(other)),
        }
    }

    /// Fixed format (SPC-4 §4.5.3).
    fn parse_fixed(b: &[u8], current: bool) -> Result<Self, DataError> {
        if b.len() < 3 {
            return Err(DataError::Short {
                what: "fixed format sense data",
                needed: 3,
                got: b.len(),
            });
        }
        let b = &b[..sense_end(b)];
        let mut s = Sense::new(
            SenseKey::from_nibble(b[2]),
            b.get(12).copied().unwrap_or(0),
            b.get(13).copied().unwrap_or(0),
        );
        s.current = current;
        s.filemark = b[2] & 0x80 != 0;
        s.eom = b[2] & 0x40 != 0;
        s.ili = b[2] & 0x20 != 0;
        // The VALID bit covers the INFORMATION field only.
        if b[0] & 0x80 != 0 {
            s.information = be32(b, 3).map(u64::from);
        }
        s.command_specific = be32(b, 8).map(u64::from);
        s.fru = b.get(14).copied().unwrap_or(0);
        s.sense_key_specific = match b.get(15..18) {
            Some(&[a, c, d]) if a & 0x80 != 0 => Some([a, c, d]),
            _ => None,
        };
        Ok(s)
    }

    /// Descriptor format (SPC-4 §4.5.2). Unknown descriptors are skipped; a descriptor cut off
    /// by truncation ends the walk.
    fn parse_descriptor(b: &[u8], current: bool) -> Result<Self, DataError> {
        if b.len() < 2 {
            return Err(DataError::Short {
                what: "descriptor format sense data",
                needed: 2,
                got: b.len(),
            });
        }
        let b = &b[..sense_end(b)];
        let mut s = Sense::new(
            SenseKey::from_nibble(b[1]),
            b.get(2).copied().unwrap_or(0),
            b.get(3).copied().unwrap_or(0),
        );
        s.current = current;
        s.descriptor_format = true;
        let mut rest = b.get(8..).unwrap_or(&[]);
        while rest.len() >= 2 {
            let len = 2 + usize::from(rest[1]);
            let Some(d) = rest.get(..len) else { break };
            match d[0] {
                // Information (§4.5.2.2): VALID bit in byte 2.
                0x00 if d.len() >= 12 && d[2] & 0x80 != 0 => s.information = be64(d, 4),
                // Command-specific information (§4.5.2.3).
                0x01 if d.len() >= 12 => s.command_specific = be64(d, 4),
                // Sense key specific (§4.5.2.4): SKSV in byte 4.
                0x02 if d.len() >= 7 && d[4] & 0x80 != 0 => s.sense_key_specific = Some([d[4], d[5], d[6]]),
                // Field replaceable unit (§4.5.2.5).
                0x03 if d.len() >= 4 => s.fru = d[3],
                // Stream commands (SSC-4): FILEMARK, EOM, ILI.
                0x04 if d.len() >= 4 => {
                    s.filemark = d[3] & 0x80 != 0;
                    s.eom = d[3] & 0x40 != 0;
                    s.ili = d[3] & 0x20 != 0;
                }
                // Block commands (SBC-3 §4.18.2): ILI.
                0x05 if d.len() >= 4 => s.ili = d[3] & 0x20 != 0,
                _ => {}
            }
            rest = &rest[len..];
        }
        Ok(s)
    }

    pub fn is_unit_attention(&self) -> bool {
        self.key == SenseKey::UnitAttention
    }

    /// UNIT ATTENTION 2a/09: the LU was resized; issue READ CAPACITY again.
    pub fn is_capacity_changed(&self) -> bool {
        self.is_unit_attention() && (self.asc, self.ascq) == (0x2a, 0x09)
    }

    /// UNIT ATTENTION 3f/0e: LUNs were added or removed; issue REPORT LUNS again.
    pub fn is_reported_luns_changed(&self) -> bool {
        self.is_unit_attention() && (self.asc, self.ascq) == (0x3f, 0x0e)
    }

    /// UNIT ATTENTION 29/xx: power on, reset or I_T nexus loss; reservations and mode settings
    /// may be gone. Every new iSCSI session sees one first.
    pub fn is_power_on_reset(&self) -> bool {
        self.is_unit_attention() && self.asc == 0x29
    }

    /// Readable text for the additional sense code, or the sense key's name when the code is
    /// not one this crate knows.
    pub fn describe(&self) -> &'static str {
        asc_description(self.asc, self.ascq).unwrap_or(self.key.name())
    }

    /// The bad field of an ILLEGAL REQUEST, when the device server pointed at it.
    pub fn field_pointer(&self) -> Option<FieldPointer> {
        let [flags, hi, lo] = self.sense_key_specific?;
        if self.key != SenseKey::IllegalRequest {
            return None;
        }
        Some(FieldPointer {
            in_cdb: flags & 0x40 != 0,
            byte: u16::from_be_bytes([hi, lo]),
            bit: (flags & 0x08 != 0).then_some(flags & 0x07),
        })
    }
}

/// End of the valid sense bytes: the ADDITIONAL SENSE LENGTH in byte 7 of both formats bounds
/// the data (SPC-4 §4.5.2.1, §4.5.3.1); without byte 7, everything present counts.
fn sense_end(b: &[u8]) -> usize {
    match b.get(7) {
        Some(&n) => b.len().min(8 + usize::from(n)),
        None => b.len(),
    }
}

impl fmt::Display for Sense {
    /// For example "ILLEGAL REQUEST: invalid field in CDB (asc/ascq 24/00, CDB byte 1 bit 3)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.current {
            f.write_str("deferred error, ")?;
        }
        write!(f, "{}", self.key)?;
        if let Some(text) = asc_description(self.asc, self.ascq) {
            write!(f, ": {text}")?;
        }
        write!(f, " (asc/ascq {:02x}/{:02x}", self.asc, self.ascq)?;
        if let Some(p) = self.field_pointer() {
            let place = if p.in_cdb { "CDB" } else { "parameter list" };
            write!(f, ", {place} byte {}", p.byte)?;
            if let Some(bit) = p.bit {
                write!(f, " bit {bit}")?;
            }
        }
        if let Some(info) = self.information {
            write!(f, ", information {info}")?;
        }
        f.write_str(")")
    }
}

/// Readable text for an additional sense code and qualifier (SPC-4 Annex D), for the pairs an
/// initiator of disks meets; a whole family (e.g. 04/xx not ready) when only the ASC is known.
pub fn asc_description(asc: u8, ascq: u8) -> Option<&'static str> {
    let text = match (asc, ascq) {
        (0x00, 0x00) => "no additional sense information",
        (0x00, 0x06) => "I/O process terminated",
        (0x00, 0x16) => "operation in progress",
        (0x03, 0x00) => "peripheral device write fault",
        (0x04, 0x00) => "logical unit not ready, cause not reportable",
        (0x04, 0x01) => "logical unit is in process of becoming ready",
        (0x04, 0x02) => "logical unit not ready, initializing command required",
        (0x04, 0x03) => "logical unit not ready, manual intervention required",
        (0x04, 0x04) => "logical unit not ready, format in progress",
        (0x04, 0x05) => "logical unit not ready, rebuild in progress",
        (0x04, 0x06) => "logical unit not ready, recalculation in progress",
        (0x04, 0x07) => "logical unit not ready, operation in progress",
        (0x04, 0x08) => "logical unit not ready, long write in progress",
        (0x04, 0x09) => "logical unit not ready, self-test in progress",
        (0x04, 0x0a) => "logical unit not accessible, asymmetric access state transition",
        (0x04, 0x0b) => "logical unit not accessible, target port in standby state",
        (0x04, 0x0c) => "logical unit not accessible, target port in unavailable state",
        (0x04, 0x12) => "logical unit not ready, offline",
        (0x04, 0x14) => "logical unit not ready, space allocation in progress",
        (0x04, 0x1b) => "logical unit not ready, sanitize in progress",
        (0x05, 0x00) => "logical unit does not respond to selection",
        (0x08, 0x00) => "logical unit communication failure",
        (0x08, 0x01) => "logical unit communication time-out",
        (0x0c, 0x00) => "write error",
        (0x0c, 0x02) => "write error, auto reallocation failed",
        (0x10, 0x01) => "logical block guard check failed",
        (0x10, 0x02) => "logical block application tag check failed",
        (0x10, 0x03) => "logical block reference tag check failed",
        (0x11, 0x00) => "unrecovered read error",
        (0x11, 0x04) => "unrecovered read error, auto reallocate failed",
        (0x14, 0x01) => "record not found",
        (0x1a, 0x00) => "parameter list length error",
        (0x1d, 0x00) => "miscompare during verify operation",
        (0x20, 0x00) => "invalid command operation code",
        (0x21, 0x00) => "logical block address out of range",
        (0x24, 0x00) => "invalid field in CDB",
        (0x25, 0x00) => "logical unit not supported",
        (0x26, 0x00) => "invalid field in parameter list",
        (0x26, 0x01) => "parameter not supported",
        (0x26, 0x02) => "parameter value invalid",
        (0x27, 0x00) => "write protected",
        (0x27, 0x01) => "hardware write protected",
        (0x27, 0x02) => "logical unit software write protected",
        (0x27, 0x07) => "space allocation failed write protect (thin provisioned pool out of space)",
        (0x28, 0x00) => "not ready to ready change, medium may have changed",
        (0x29, 0x00) => "power on, reset, or bus device reset occurred",
        (0x29, 0x01) => "power on occurred",
        (0x29, 0x02) => "SCSI bus reset occurred",
        (0x29, 0x03) => "bus device reset function occurred",
        (0x29, 0x04) => "device internal reset",
        (0x29, 0x07) => "I_T nexus loss occurred",
        (0x2a, 0x01) => "mode parameters changed",
        (0x2a, 0x03) => "reservations preempted",
        (0x2a, 0x04) => "reservations released",
        (0x2a, 0x05) => "registrations preempted",
        (0x2a, 0x06) => "asymmetric access state changed",
        (0x2a, 0x07) => "implicit asymmetric access state transition failed",
        (0x2a, 0x09) => "capacity data has changed",
        (0x2c, 0x00) => "command sequence error",
        (0x2f, 0x00) => "commands cleared by another initiator",
        (0x31, 0x00) => "medium format corrupted",
        (0x38, 0x07) => "thin provisioning soft threshold reached",
        (0x3a, 0x00) => "medium not present",
        (0x3e, 0x01) => "logical unit failure",
        (0x3f, 0x01) => "microcode has been changed",
        (0x3f, 0x03) => "inquiry data has changed",
        (0x3f, 0x05) => "device identifier changed",
        (0x3f, 0x0e) => "reported LUNs data has changed",
        (0x44, 0x00) => "internal target failure",
        (0x4b, 0x00) => "data phase error",
        (0x4e, 0x00) => "overlapped commands attempted",
        (0x55, 0x03) => "insufficient resources",
        (0x55, 0x06) => "auxiliary memory out of space",
        (0x55, 0x07) => "quota error",
        (0x5d, 0x00) => "failure prediction threshold exceeded",
        _ => match asc {
            0x04 => "logical unit not ready",
            0x0c => "write error",
            0x10 => "protection information check failed",
            0x11 => "unrecovered read error",
            0x27 => "write protected",
            0x29 => "power on or reset occurred",
            0x2a => "parameters changed",
            0x3a => "medium not present",
            0x3f => "target operating conditions have changed",
            0x55 => "system resource failure",
            0x5d => "failure prediction threshold exceeded",
            _ => return None,
        },
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UNIT ATTENTION as tgtd 1.0.85 sends it on the first command of a new nexus (captured).
    const TGTD_UA: [u8; 18] = [
        0x70, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    /// NOT READY from tgtd for a LUN set offline (captured).
    const TGTD_NOT_READY: [u8; 18] = [
        0x70, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn sense_keys_all_sixteen() {
        for code in 0..16u8 {
            assert_eq!(SenseKey::from_nibble(code).code(), code);
            assert_eq!(SenseKey::from_nibble(code | 0xf0).code(), code);
        }
        assert_eq!(SenseKey::from_nibble(5), SenseKey::IllegalRequest);
        assert_eq!(SenseKey::from_nibble(0xf), SenseKey::Completed);
        assert_eq!(SenseKey::DataProtect.to_string(), "DATA PROTECT");
    }

    #[test]
    fn tgtd_unit_attention() {
        let s = Sense::parse(&TGTD_UA).unwrap();
        assert!(s.current && !s.descriptor_format);
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::UnitAttention, 0x29, 0x00));
        assert!(s.is_unit_attention() && s.is_power_on_reset());
        assert!(!s.is_capacity_changed() && !s.is_reported_luns_changed());
        assert_eq!(s.information, None);
        assert_eq!(s.command_specific, Some(0));
        assert_eq!(s.describe(), "power on, reset, or bus device reset occurred");
        assert_eq!(
            s.to_string(),
            "UNIT ATTENTION: power on, reset, or bus device reset occurred (asc/ascq 29/00)"
        );
    }

    #[test]
    fn tgtd_not_ready() {
        let s = Sense::parse(&TGTD_NOT_READY).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::NotReady, 0x04, 0x01));
        assert_eq!(s.describe(), "logical unit is in process of becoming ready");
    }

    #[test]
    fn fixed_with_information_and_deferred() {
        // VALID + deferred (0xf1), MEDIUM ERROR at LBA 0x12345678, FRU 7.
        let b = [
            0xf1, 0x00, 0x03, 0x12, 0x34, 0x56, 0x78, 0x0a, 0, 0, 0, 0, 0x11, 0x00, 0x07, 0, 0, 0,
        ];
        let s = Sense::parse(&b).unwrap();
        assert!(!s.current);
        assert_eq!(s.key, SenseKey::MediumError);
        assert_eq!(s.information, Some(0x1234_5678));
        assert_eq!(s.fru, 7);
        assert_eq!(
            s.to_string(),
            "deferred error, MEDIUM ERROR: unrecovered read error (asc/ascq 11/00, information 305419896)"
        );
        // Same bytes without VALID: the information field must not be trusted.
        let mut nv = b;
        nv[0] = 0x70;
        assert_eq!(Sense::parse(&nv).unwrap().information, None);
    }

    #[test]
    fn fixed_field_pointer() {
        // ILLEGAL REQUEST 24/00, SKSV + C/D + BPV bit 3, CDB byte 1.
        let b = [
            0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0x00, 0, 0xcb, 0x00, 0x01,
        ];
        let s = Sense::parse(&b).unwrap();
        assert_eq!(s.sense_key_specific, Some([0xcb, 0x00, 0x01]));
        assert_eq!(
            s.field_pointer(),
            Some(FieldPointer {
                in_cdb: true,
                byte: 1,
                bit: Some(3)
            })
        );
        assert_eq!(
            s.to_string(),
            "ILLEGAL REQUEST: invalid field in CDB (asc/ascq 24/00, CDB byte 1 bit 3)"
        );
        // SKSV clear: no sense key specific data.
        let mut nosksv = b;
        nosksv[15] = 0x4b;
        let s = Sense::parse(&nosksv).unwrap();
        assert_eq!(s.sense_key_specific, None);
        assert_eq!(s.field_pointer(), None);
    }

    #[test]
    fn fixed_truncation_respects_additional_length() {
        // Only the first three bytes: the key survives.
        let s = Sense::parse(&[0x70, 0x00, 0x06]).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::UnitAttention, 0, 0));
        // Additional sense length 0: bytes after byte 7 are not sense data, even if present.
        let mut b = TGTD_UA;
        b[7] = 0;
        let s = Sense::parse(&b).unwrap();
        assert_eq!((s.asc, s.ascq, s.command_specific), (0, 0, None));
        // Length 5 (ends after byte 12): ASC present, ASCQ not.
        let b = [0x70, 0, 0x02, 0, 0, 0, 0, 0x05, 0, 0, 0, 0, 0x04, 0x01];
        let s = Sense::parse(&b).unwrap();
        assert_eq!((s.asc, s.ascq), (0x04, 0x00));
    }

    #[test]
    fn descriptor_format() {
        // ILLEGAL REQUEST 21/00 with an information descriptor (LBA 2^32) and a sense key
        // specific descriptor pointing at CDB byte 2, then an unknown descriptor type 0x80.
        let b = [
            0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0x18, // header, additional length 24
            0x00, 0x0a, 0x80, 0x00, 0, 0, 0, 0x01, 0, 0, 0, 0, // information, VALID
            0x02, 0x06, 0, 0, 0xc0, 0x00, 0x02, 0x00, // sense key specific
            0x80, 0x02, 0xaa, 0xbb, // vendor descriptor, skipped
        ];
        let s = Sense::parse(&b).unwrap();
        assert!(s.current && s.descriptor_format);
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::IllegalRequest, 0x21, 0x00));
        assert_eq!(s.information, Some(1 << 32));
        assert_eq!(
            s.field_pointer(),
            Some(FieldPointer {
                in_cdb: true,
                byte: 2,
                bit: None
            })
        );
        assert_eq!(s.describe(), "logical block address out of range");
        // Deferred descriptor sense, header only.
        let s = Sense::parse(&[0x73, 0x06, 0x2a, 0x09]).unwrap();
        assert!(!s.current && s.is_capacity_changed());
        // A descriptor cut off by the additional length is ignored, not trusted.
        let mut cut = b;
        cut[7] = 10;
        let s = Sense::parse(&cut).unwrap();
        assert_eq!(s.information, None);
        assert_eq!(s.asc, 0x21);
    }

    #[test]
    fn descriptor_block_and_stream_flags() {
        let b = [
            0x72, 0x03, 0x11, 0x00, 0, 0, 0, 0x08, 0x05, 0x02, 0, 0x20, 0x03, 0x02, 0, 0x09,
        ];
        let s = Sense::parse(&b).unwrap();
        assert!(s.ili);
        assert_eq!(s.fru, 9);
    }

    #[test]
    fn bad_sense_is_an_error() {
        assert_eq!(
            Sense::parse(&[]),
            Err(DataError::Short {
                what: "sense data",
                needed: 1,
                got: 0
            })
        );
        assert_eq!(
            Sense::parse(&[0x7f, 0, 0, 0]),
            Err(DataError::UnsupportedSenseFormat(0x7f))
        );
        assert_eq!(Sense::parse(&[0x00; 18]), Err(DataError::UnsupportedSenseFormat(0x00)));
        assert!(matches!(
            Sense::parse(&[0x70, 0]),
            Err(DataError::Short { needed: 3, .. })
        ));
        assert!(matches!(Sense::parse(&[0x72]), Err(DataError::Short { needed: 2, .. })));
    }

    #[test]
    fn descriptions() {
        assert_eq!(asc_description(0x2a, 0x09), Some("capacity data has changed"));
        assert_eq!(asc_description(0x3f, 0x0e), Some("reported LUNs data has changed"));
        assert_eq!(asc_description(0x20, 0x00), Some("invalid command operation code"));
        assert_eq!(asc_description(0x04, 0x7e), Some("logical unit not ready"));
        assert_eq!(
            asc_description(0x27, 0x07).map(|t| t.starts_with("space allocation failed")),
            Some(true)
        );
        assert_eq!(asc_description(0x70, 0x00), None);
        // Unknown codes fall back to the key's name, which Display does not repeat.
        let s = Sense::new(SenseKey::HardwareError, 0x70, 0x01);
        assert_eq!(s.describe(), "HARDWARE ERROR");
        assert_eq!(s.to_string(), "HARDWARE ERROR (asc/ascq 70/01)");
    }
}
