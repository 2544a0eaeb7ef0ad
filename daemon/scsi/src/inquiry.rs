//! INQUIRY data: the standard page (SPC-4 §6.6.2) and the vital product data pages the
//! initiator reads (SPC-4 §7.8, SBC-3 §6.5): 0x00 supported pages, 0x80 unit serial number,
//! 0x83 device identification, 0xB0 Block Limits, 0xB1 Block Device Characteristics and 0xB2
//! Logical Block Provisioning.
//!
//! VPD parsers check the page code and the PAGE LENGTH field: when the data is shorter than
//! the page length says, they return [`DataError::Truncated`] with the allocation length to
//! reissue the INQUIRY with, rather than parse part of a page. Fields that a shorter (older)
//! page does not contain read as zero, which SBC defines as "not reported".

use std::fmt;

use crate::bytes::{ascii_field, be16, be32, be64};
use crate::error::DataError;

/// VPD page codes.
pub mod vpd {
    pub const SUPPORTED_PAGES: u8 = 0x00;
    pub const UNIT_SERIAL_NUMBER: u8 = 0x80;
    pub const DEVICE_IDENTIFICATION: u8 = 0x83;
    pub const BLOCK_LIMITS: u8 = 0xb0;
    pub const BLOCK_DEVICE_CHARACTERISTICS: u8 = 0xb1;
    pub const LOGICAL_BLOCK_PROVISIONING: u8 = 0xb2;
}

/// Peripheral device type (SPC-4 §6.6.2, table 139), for the types an iSCSI target exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// 0x00: a disk (SBC).
    DirectAccess,
    /// 0x01: a tape (SSC).
    SequentialAccess,
    /// 0x03
    Processor,
    /// 0x05: CD/DVD (MMC).
    CdDvd,
    /// 0x07
    OpticalMemory,
    /// 0x08: a tape library changer.
    MediumChanger,
    /// 0x0C: a RAID controller; tgtd's LUN 0.
    StorageArrayController,
    /// 0x0D
    EnclosureServices,
    /// 0x0E: RBC.
    SimplifiedDirectAccess,
    /// 0x14: host-managed zoned disk (ZBC).
    HostManagedZoned,
    /// 0x1E
    WellKnownLu,
    /// 0x1F: unknown or no device type.
    Unknown,
    /// Any other code.
    Other(u8),
}

impl DeviceType {
    /// The type from the low five bits of `b`.
    pub fn from_code(b: u8) -> Self {
        match b & 0x1f {
            0x00 => DeviceType::DirectAccess,
            0x01 => DeviceType::SequentialAccess,
            0x03 => DeviceType::Processor,
            0x05 => DeviceType::CdDvd,
            0x07 => DeviceType::OpticalMemory,
            0x08 => DeviceType::MediumChanger,
            0x0c => DeviceType::StorageArrayController,
            0x0d => DeviceType::EnclosureServices,
            0x0e => DeviceType::SimplifiedDirectAccess,
            0x14 => DeviceType::HostManagedZoned,
            0x1e => DeviceType::WellKnownLu,
            0x1f => DeviceType::Unknown,
            other => DeviceType::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            DeviceType::DirectAccess => 0x00,
            DeviceType::SequentialAccess => 0x01,
            DeviceType::Processor => 0x03,
            DeviceType::CdDvd => 0x05,
            DeviceType::OpticalMemory => 0x07,
            DeviceType::MediumChanger => 0x08,
            DeviceType::StorageArrayController => 0x0c,
            DeviceType::EnclosureServices => 0x0d,
            DeviceType::SimplifiedDirectAccess => 0x0e,
            DeviceType::HostManagedZoned => 0x14,
            DeviceType::WellKnownLu => 0x1e,
            DeviceType::Unknown => 0x1f,
            DeviceType::Other(b) => b,
        }
    }
}

/// Standard INQUIRY data (SPC-4 §6.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardInquiry {
    /// Peripheral qualifier: 0 the LU is connected, 1 it exists but is not connected now,
    /// 3 there is no LU at this LUN.
    pub qualifier: u8,
    pub device_type: DeviceType,
    /// RMB: removable medium.
    pub removable: bool,
    /// The SPC version claimed: 5 SPC-3, 6 SPC-4, 7 SPC-5 (0: no claim).
    pub version: u8,
    pub normaca: bool,
    /// HISUP: LUNs use the hierarchical format of SAM.
    pub hisup: bool,
    pub response_data_format: u8,
    /// SCCS: an embedded storage array controller.
    pub sccs: bool,
    pub acc: bool,
    /// TPGS: asymmetric LU access (ALUA) support, 0 none, 1 implicit, 2 explicit, 3 both.
    pub tpgs: u8,
    /// 3PC: third-party copy (EXTENDED COPY) supported.
    pub three_pc: bool,
    /// PROTECT: protection information supported.
    pub protect: bool,
    pub encserv: bool,
    pub multip: bool,
    /// CMDQUE: command queuing supported.
    pub cmdque: bool,
    /// T10 vendor identification, trimmed.
    pub vendor: String,
    /// Product identification, trimmed.
    pub product: String,
    /// Product revision level, trimmed.
    pub revision: String,
}

/// Bytes of standard INQUIRY data that hold every field of [`StandardInquiry`]; also the
/// smallest allocation length to ask for.
pub const STANDARD_INQUIRY_LEN: usize = 36;

impl StandardInquiry {
    /// Parses standard INQUIRY data. The first 36 bytes are required; like Linux, they are used
    /// even when the ADDITIONAL LENGTH field claims fewer, which some targets get wrong.
    pub fn parse(b: &[u8]) -> Result<Self, DataError> {
        if b.len() < STANDARD_INQUIRY_LEN {
            return Err(DataError::Short {
                what: "standard INQUIRY data",
                needed: STANDARD_INQUIRY_LEN,
                got: b.len(),
            });
        }
        Ok(StandardInquiry {
            qualifier: b[0] >> 5,
            device_type: DeviceType::from_code(b[0]),
            removable: b[1] & 0x80 != 0,
            version: b[2],
            normaca: b[3] & 0x20 != 0,
            hisup: b[3] & 0x10 != 0,
            response_data_format: b[3] & 0x0f,
            sccs: b[5] & 0x80 != 0,
            acc: b[5] & 0x40 != 0,
            tpgs: (b[5] >> 4) & 0x03,
            three_pc: b[5] & 0x08 != 0,
            protect: b[5] & 0x01 != 0,
            encserv: b[6] & 0x40 != 0,
            multip: b[6] & 0x10 != 0,
            cmdque: b[7] & 0x02 != 0,
            vendor: ascii_field(&b[8..16]),
            product: ascii_field(&b[16..32]),
            revision: ascii_field(&b[32..36]),
        })
    }

    /// True when a logical unit is connected at this LUN (peripheral qualifier 0).
    pub fn is_connected(&self) -> bool {
        self.qualifier == 0
    }

    /// True for a connected disk: what the ublk layer can present.
    pub fn is_disk(&self) -> bool {
        self.is_connected() && self.device_type == DeviceType::DirectAccess
    }
}

/// The number of bytes the target has for the VPD page in `b` (header included), from its
/// PAGE LENGTH field: the allocation length to ask for when a parser reports truncation.
pub fn vpd_page_len(b: &[u8]) -> Option<usize> {
    be16(b, 2).map(|n| 4 + usize::from(n))
}

/// The whole page, header included so that offsets match SPC's tables, after checking the
/// page code and that nothing was cut off.
fn vpd_page<'a>(b: &'a [u8], page: u8, what: &'static str) -> Result<&'a [u8], DataError> {
    if b.len() < 4 {
        return Err(DataError::Short {
            what,
            needed: 4,
            got: b.len(),
        });
    }
    if b[1] != page {
        return Err(DataError::WrongPage {
            what,
            expected: page,
            got: b[1],
        });
    }
    let len = vpd_page_len(b).unwrap_or(4);
    b.get(..len).ok_or(DataError::Truncated {
        what,
        needed: len,
        got: b.len(),
    })
}

/// VPD page 0x00 (SPC-4 §7.8.14): the page codes the device supports.
pub fn parse_supported_pages(b: &[u8]) -> Result<Vec<u8>, DataError> {
    Ok(vpd_page(b, vpd::SUPPORTED_PAGES, "supported VPD pages")?[4..].to_vec())
}

/// VPD page 0x80 (SPC-4 §7.8.15): the product serial number, trimmed.
pub fn parse_unit_serial(b: &[u8]) -> Result<String, DataError> {
    Ok(ascii_field(
        &vpd_page(b, vpd::UNIT_SERIAL_NUMBER, "unit serial number VPD page")?[4..],
    ))
}

/// CODE SET of a designation descriptor (SPC-4 §7.8.6.1, table 590).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeSet {
    Binary,
    Ascii,
    Utf8,
    Reserved(u8),
}

/// ASSOCIATION of a designation descriptor: what the designator names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Association {
    /// The addressed logical unit: the designators that identify a LU for multipath.
    LogicalUnit,
    /// The target port that received the command.
    TargetPort,
    /// The SCSI target device containing the LU.
    TargetDevice,
    Reserved,
}

/// DESIGNATOR TYPE (SPC-4 §7.8.6.1, table 592).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DesignatorType {
    VendorSpecific,
    T10VendorId,
    Eui64,
    Naa,
    RelativeTargetPort,
    TargetPortGroup,
    LogicalUnitGroup,
    Md5LogicalUnitId,
    ScsiNameString,
    ProtocolSpecificPortId,
    Uuid,
    Reserved(u8),
}

impl DesignatorType {
    fn from_code(b: u8) -> Self {
        match b & 0x0f {
            0x0 => DesignatorType::VendorSpecific,
            0x1 => DesignatorType::T10VendorId,
            0x2 => DesignatorType::Eui64,
            0x3 => DesignatorType::Naa,
            0x4 => DesignatorType::RelativeTargetPort,
            0x5 => DesignatorType::TargetPortGroup,
            0x6 => DesignatorType::LogicalUnitGroup,
            0x7 => DesignatorType::Md5LogicalUnitId,
            0x8 => DesignatorType::ScsiNameString,
            0x9 => DesignatorType::ProtocolSpecificPortId,
            0xa => DesignatorType::Uuid,
            other => DesignatorType::Reserved(other),
        }
    }
}

/// Protocol identifier of iSCSI (SPC-4 §7.6.1, table 444).
pub const PROTOCOL_ISCSI: u8 = 5;

/// One designation descriptor of the device identification page (SPC-4 §7.8.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Designator {
    pub code_set: CodeSet,
    pub association: Association,
    pub designator_type: DesignatorType,
    /// PROTOCOL IDENTIFIER, when PIV marks it valid (only for target port and target device
    /// associations); [`PROTOCOL_ISCSI`] for iSCSI.
    pub protocol_id: Option<u8>,
    /// The designator bytes.
    pub id: Vec<u8>,
}

impl Designator {
    /// From one complete descriptor: a 4-byte header and DESIGNATOR LENGTH bytes.
    fn from_descriptor(d: &[u8]) -> Self {
        let association = match (d[1] >> 4) & 0x03 {
            0 => Association::LogicalUnit,
            1 => Association::TargetPort,
            2 => Association::TargetDevice,
            _ => Association::Reserved,
        };
        let piv = d[1] & 0x80 != 0;
        Designator {
            code_set: match d[0] & 0x0f {
                1 => CodeSet::Binary,
                2 => CodeSet::Ascii,
                3 => CodeSet::Utf8,
                other => CodeSet::Reserved(other),
            },
            association,
            designator_type: DesignatorType::from_code(d[1]),
            protocol_id: (piv && matches!(association, Association::TargetPort | Association::TargetDevice))
                .then_some(d[0] >> 4),
            id: d[4..].to_vec(),
        }
    }

    /// RELATIVE TARGET PORT IDENTIFIER of a relative target port designator (§7.8.6.5).
    pub fn relative_target_port(&self) -> Option<u16> {
        match self.designator_type {
            DesignatorType::RelativeTargetPort => be16(&self.id, 2),
            _ => None,
        }
    }

    /// TARGET PORT GROUP of a target port group designator (§7.8.6.6), for ALUA.
    pub fn target_port_group(&self) -> Option<u16> {
        match self.designator_type {
            DesignatorType::TargetPortGroup => be16(&self.id, 2),
            _ => None,
        }
    }

    /// How good a WWID this designator makes, higher is better; None when it is not fit to
    /// identify a logical unit. NAA before EUI-64 before SCSI name string before T10 vendor
    /// ID; within NAA, IEEE Registered Extended (6) before Registered (5) before Extended (2)
    /// and Locally Assigned (3); within EUI-64, longer first.
    fn wwid_rank(&self) -> Option<u8> {
        if self.association != Association::LogicalUnit {
            return None;
        }
        let n = self.id.len();
        match (self.designator_type, self.code_set) {
            (DesignatorType::Naa, CodeSet::Binary) => match (self.id.first()? >> 4, n) {
                (6, 16) => Some(10),
                (5, 8) => Some(9),
                (2 | 3, 8) => Some(8),
                _ => None,
            },
            (DesignatorType::Eui64, CodeSet::Binary) => match n {
                16 => Some(7),
                12 => Some(6),
                8 => Some(5),
                _ => None,
            },
            (DesignatorType::ScsiNameString, CodeSet::Utf8 | CodeSet::Ascii) => {
                (!name_string(&self.id)?.is_empty()).then_some(3)
            }
            (DesignatorType::T10VendorId, _) => (!trim_end_pad(&self.id).is_empty()).then_some(2),
            _ => None,
        }
    }

    /// This designator as a WWID, if it is a logical unit designator of a kind that names the
    /// LU uniquely. See [`Wwid`] for the format.
    pub fn wwid(&self) -> Option<Wwid> {
        self.wwid_rank()?;
        let s = match self.designator_type {
            DesignatorType::Naa => format!("naa.{}", lower_hex(&self.id)),
            DesignatorType::Eui64 => format!("eui.{}", lower_hex(&self.id)),
            DesignatorType::ScsiNameString => name_string(&self.id)?.to_owned(),
            DesignatorType::T10VendorId => format!("t10.{}", escape_ascii(trim_end_pad(&self.id))),
            _ => return None,
        };
        Some(Wwid(s))
    }
}

fn lower_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A SCSI name string is NUL terminated and NUL padded (SPC-4 §7.8.6.11).
fn name_string(id: &[u8]) -> Option<&str> {
    let end = id.iter().position(|&c| c == 0).unwrap_or(id.len());
    std::str::from_utf8(&id[..end]).ok()
}

fn trim_end_pad(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ' && c != 0).map_or(0, |i| i + 1);
    &b[..end]
}

/// Printable ASCII as is, anything else (and the backslash itself, so that the mapping stays
/// one-to-one) as `\xNN`.
fn escape_ascii(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(char::from(c));
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

/// The world wide identifier of a logical unit: the identity multipath groups paths by.
///
/// Formats, chosen to match what Linux shows in `/sys/block/sdX/device/wwid` for the same LU
/// wherever the kernel's own rendering is plain:
/// - `naa.` + the NAA designator in lowercase hex (16 or 32 digits), e.g.
///   `naa.6001405abcdef0123456789abcdef012`;
/// - `eui.` + the EUI-64 designator in lowercase hex (16, 24 or 32 digits);
/// - a SCSI name string as the target gives it, up to its first NUL (it carries its own
///   `naa.`, `eui.` or `iqn.` prefix);
/// - `t10.` + the T10 vendor ID designator (vendor, then vendor-specific part) with trailing
///   spaces and NULs removed, inner spaces kept, and bytes outside printable ASCII and the
///   backslash written as `\xNN`, e.g. `t10.IET     00010001`.
///
/// [`best_wwid`] picks among a LU's designators in a fixed order, so the WWID of a LU stays
/// the same across paths, sessions and restarts as long as the target reports the same page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wwid(String);

impl Wwid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Wwid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// VPD page 0x83 (SPC-4 §7.8.6): all designation descriptors, in page order. A descriptor
/// that runs past the page is an error, so that a damaged page never yields a different
/// WWID; fewer than 4 bytes left at the end are taken as padding.
pub fn parse_device_identification(b: &[u8]) -> Result<Vec<Designator>, DataError> {
    const WHAT: &str = "device identification VPD page";
    let page = vpd_page(b, vpd::DEVICE_IDENTIFICATION, WHAT)?;
    let mut rest = &page[4..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let len = 4 + usize::from(rest[3]);
        let d = rest.get(..len).ok_or(DataError::Invalid {
            what: WHAT,
            reason: "a designation descriptor runs past the page length",
        })?;
        out.push(Designator::from_descriptor(d));
        rest = &rest[len..];
    }
    Ok(out)
}

/// The best logical unit WWID among `designators` (see [`Designator::wwid`] for the order);
/// the first one in page order wins a tie.
pub fn best_wwid(designators: &[Designator]) -> Option<Wwid> {
    let mut best: Option<(u8, &Designator)> = None;
    for d in designators {
        if let Some(rank) = d.wwid_rank() {
            let better = match best {
                None => true,
                Some((r, _)) => rank > r,
            };
            if better {
                best = Some((rank, d));
            }
        }
    }
    best?.1.wwid()
}

/// VPD page 0xB0, Block Limits (SBC-3 §6.5.3). Lengths are in logical blocks; 0 means the
/// device reports no limit or no preference, also for fields an older, shorter page lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockLimits {
    /// WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 (whole LU) is not supported.
    pub wsnz: bool,
    pub max_compare_write_len: u8,
    pub opt_xfer_len_granularity: u16,
    pub max_xfer_len: u32,
    pub opt_xfer_len: u32,
    pub max_prefetch_len: u32,
    /// The most blocks one UNMAP may cover; 0 together with LBPU = 0 means no UNMAP,
    /// 0xFFFF_FFFF no limit.
    pub max_unmap_lba_count: u32,
    /// The most block descriptors in one UNMAP parameter list; 0xFFFF_FFFF no limit.
    pub max_unmap_descriptors: u32,
    pub opt_unmap_granularity: u32,
    /// UNMAP GRANULARITY ALIGNMENT, when UGAVALID is set.
    pub unmap_granularity_alignment: Option<u32>,
    pub max_write_same_len: u64,
}

impl BlockLimits {
    pub fn parse(b: &[u8]) -> Result<Self, DataError> {
        let p = vpd_page(b, vpd::BLOCK_LIMITS, "Block Limits VPD page")?;
        let u32_at = |off| be32(p, off).unwrap_or(0);
        let uga = u32_at(32);
        Ok(BlockLimits {
            wsnz: p.get(4).is_some_and(|b| b & 0x01 != 0),
            max_compare_write_len: p.get(5).copied().unwrap_or(0),
            opt_xfer_len_granularity: be16(p, 6).unwrap_or(0),
            max_xfer_len: u32_at(8),
            opt_xfer_len: u32_at(12),
            max_prefetch_len: u32_at(16),
            max_unmap_lba_count: u32_at(20),
            max_unmap_descriptors: u32_at(24),
            opt_unmap_granularity: u32_at(28),
            unmap_granularity_alignment: (uga & 0x8000_0000 != 0).then_some(uga & 0x7fff_ffff),
            max_write_same_len: be64(p, 36).unwrap_or(0),
        })
    }
}

/// VPD page 0xB1, Block Device Characteristics (SBC-3 §6.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockDeviceCharacteristics {
    /// MEDIUM ROTATION RATE: 0 not reported, 1 non-rotating (SSD, RAM), else rpm.
    pub rotation_rate: u16,
    /// NOMINAL FORM FACTOR: 0 not reported, 1 5.25", 2 3.5", 3 2.5", 4 1.8", 5 below 1.8".
    pub form_factor: u8,
}

impl BlockDeviceCharacteristics {
    pub fn parse(b: &[u8]) -> Result<Self, DataError> {
        let p = vpd_page(
            b,
            vpd::BLOCK_DEVICE_CHARACTERISTICS,
            "Block Device Characteristics VPD page",
        )?;
        Ok(BlockDeviceCharacteristics {
            rotation_rate: be16(p, 4).unwrap_or(0),
            form_factor: p.get(7).map_or(0, |b| b & 0x0f),
        })
    }

    /// The block queue's `rotational` flag: true unless the device reports a non-rotating
    /// medium (rate 1). Like Linux, "not reported" (0) counts as rotational.
    pub fn is_rotational(&self) -> bool {
        self.rotation_rate != 1
    }
}

/// PROVISIONING TYPE of the Logical Block Provisioning page (SBC-4 §6.6.6, table 253).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvisioningType {
    /// 0: not reported, or fully provisioned.
    #[default]
    NotReported,
    /// 1: resource provisioned.
    Resource,
    /// 2: thin provisioned.
    Thin,
    Reserved(u8),
}

/// VPD page 0xB2, Logical Block Provisioning (SBC-3 §6.5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogicalBlockProvisioning {
    pub threshold_exponent: u8,
    /// LBPU: UNMAP supported.
    pub lbpu: bool,
    /// LBPWS: WRITE SAME(16) with UNMAP supported.
    pub lbpws: bool,
    /// LBPWS10: WRITE SAME(10) with UNMAP supported.
    pub lbpws10: bool,
    /// LBPRZ: unmapped blocks read back as zeros (field value 001b in SBC-4, the bit of SBC-3).
    pub lbprz: bool,
    /// ANC_SUP: the ANCHOR bit is supported.
    pub anc_sup: bool,
    /// DP: a provisioning group descriptor follows.
    pub dp: bool,
    pub provisioning_type: ProvisioningType,
}

impl LogicalBlockProvisioning {
    pub fn parse(b: &[u8]) -> Result<Self, DataError> {
        let p = vpd_page(
            b,
            vpd::LOGICAL_BLOCK_PROVISIONING,
            "Logical Block Provisioning VPD page",
        )?;
        let flags = p.get(5).copied().unwrap_or(0);
        Ok(LogicalBlockProvisioning {
            threshold_exponent: p.get(4).copied().unwrap_or(0),
            lbpu: flags & 0x80 != 0,
            lbpws: flags & 0x40 != 0,
            lbpws10: flags & 0x20 != 0,
            lbprz: (flags >> 2) & 0x07 == 0x01,
            anc_sup: flags & 0x02 != 0,
            dp: flags & 0x01 != 0,
            provisioning_type: match p.get(6).map_or(0, |b| b & 0x07) {
                0 => ProvisioningType::NotReported,
                1 => ProvisioningType::Resource,
                2 => ProvisioningType::Thin,
                other => ProvisioningType::Reserved(other),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::unhex;

    // Captured from tgtd 1.0.85 (rdwr backing store, 64 MiB) with libiscsi's tools.
    const TGTD_STD: &str = "000005123d00000249455420202020205649525455414c2d4449534b2020202030303031
        0000000000000000000000000000000000000000000004c00960030000000000";
    const TGTD_CONTROLLER: &str = "0c0005123d0000024945542020202020436f6e74726f6c6c6572202020202020
        303030310000000000000000000000000000000000000000000004c0096001fb";
    const TGTD_VPD00: &str = "00000006008083b0b1b20000";
    const TGTD_VPD80: &str = "00800024202020202020202020202020202020202020202020202020202020202020626561663131";
    const TGTD_VPD83: &str = "00830048 02010024 4945542020202020 3030303130303031 0000000000000000
        0000000000000000 00000000 01030008 3000000100000001 01030010 60000000000000000e00000000010001";
    const TGTD_VPDB0: &str = "00b0003c00800000000000000000000000000000000000000000000000000000
        0000000000000000000000000000000000000000000000000000000000000000";
    const TGTD_VPDB2: &str = "00b2000400000000";

    /// A LIO-style page (NAA 6001405..., T10 "LIO-ORG", port designators, a SCSI name string
    /// for the target port), checked against `sg_vpd --inhex`.
    const LIO_VPD83: &str = "0083007a 01030010 6001405abcdef0123456789abcdef012
        0201001a 4c494f2d4f52472033663263316137652d386439622d34633661
        51940004 00000001  01150004 00000002  01060004 00000000
        5398002c 69716e2e323030332d30312e6f72672e6c696e75782d69736373692e683a736e2e312c742c30783030303100";

    #[test]
    fn tgtd_standard_inquiry() {
        let i = StandardInquiry::parse(&unhex(TGTD_STD)).unwrap();
        assert_eq!(i.qualifier, 0);
        assert_eq!(i.device_type, DeviceType::DirectAccess);
        assert!(i.is_disk() && !i.removable);
        assert_eq!((i.version, i.response_data_format), (5, 2));
        assert!(i.hisup && i.cmdque && !i.normaca);
        assert!(!i.three_pc && !i.protect && !i.sccs);
        assert_eq!(i.tpgs, 0);
        assert_eq!(
            (i.vendor.as_str(), i.product.as_str(), i.revision.as_str()),
            ("IET", "VIRTUAL-DISK", "0001")
        );

        let c = StandardInquiry::parse(&unhex(TGTD_CONTROLLER)).unwrap();
        assert_eq!(c.device_type, DeviceType::StorageArrayController);
        assert_eq!(c.product, "Controller");
        assert!(c.is_connected() && !c.is_disk());
    }

    #[test]
    fn standard_inquiry_flags_and_short_data() {
        let mut b = unhex(TGTD_STD);
        b[0] = 0x7f; // qualifier 3, type 0x1f: no LU here
        b[1] = 0x80;
        b[5] = 0x39; // TPGS 3, 3PC, PROTECT
        let i = StandardInquiry::parse(&b).unwrap();
        assert_eq!((i.qualifier, i.device_type), (3, DeviceType::Unknown));
        assert!(!i.is_connected() && i.removable);
        assert!(i.three_pc && i.protect);
        assert_eq!(i.tpgs, 3);
        assert_eq!(
            StandardInquiry::parse(&b[..35]),
            Err(DataError::Short {
                what: "standard INQUIRY data",
                needed: 36,
                got: 35
            })
        );
        assert!(StandardInquiry::parse(&b[..36]).is_ok());
    }

    #[test]
    fn device_types() {
        for code in 0..32u8 {
            assert_eq!(DeviceType::from_code(code).code(), code);
        }
        assert_eq!(DeviceType::from_code(0x12), DeviceType::Other(0x12));
    }

    #[test]
    fn tgtd_supported_pages_and_serial() {
        // tgtd returns 12 bytes for a 6-byte page: the padding is not a page code.
        assert_eq!(
            parse_supported_pages(&unhex(TGTD_VPD00)).unwrap(),
            vec![0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]
        );
        assert_eq!(parse_unit_serial(&unhex(TGTD_VPD80)).unwrap(), "beaf11");
    }

    #[test]
    fn tgtd_device_identification() {
        let ds = parse_device_identification(&unhex(TGTD_VPD83)).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[0].designator_type, DesignatorType::T10VendorId);
        assert_eq!(ds[0].code_set, CodeSet::Ascii);
        assert_eq!(ds[0].id.len(), 36);
        assert_eq!(ds[0].wwid().unwrap().as_str(), "t10.IET     00010001");
        assert_eq!(ds[1].wwid().unwrap().as_str(), "naa.3000000100000001");
        assert_eq!(ds[2].association, Association::LogicalUnit);
        assert_eq!(ds[2].protocol_id, None);
        // NAA type 6 beats type 3 and the T10 vendor ID.
        assert_eq!(
            best_wwid(&ds).unwrap().to_string(),
            "naa.60000000000000000e00000000010001"
        );
    }

    #[test]
    fn lio_device_identification() {
        let ds = parse_device_identification(&unhex(LIO_VPD83)).unwrap();
        assert_eq!(ds.len(), 6);
        assert_eq!(ds[2].association, Association::TargetPort);
        assert_eq!(ds[2].protocol_id, Some(PROTOCOL_ISCSI));
        assert_eq!(ds[2].relative_target_port(), Some(1));
        assert_eq!(ds[3].target_port_group(), Some(2));
        assert_eq!(ds[3].protocol_id, None, "PIV clear");
        assert_eq!(ds[3].relative_target_port(), None);
        assert_eq!(ds[4].designator_type, DesignatorType::LogicalUnitGroup);
        assert_eq!(ds[5].code_set, CodeSet::Utf8);
        assert_eq!(ds[5].designator_type, DesignatorType::ScsiNameString);
        // The name string names a target port, not the LU: never a WWID.
        assert_eq!(ds[5].wwid(), None);
        assert_eq!(best_wwid(&ds).unwrap().as_str(), "naa.6001405abcdef0123456789abcdef012");
        assert_eq!(ds[1].wwid().unwrap().as_str(), "t10.LIO-ORG 3f2c1a7e-8d9b-4c6a");
    }

    fn lu(designator_type: DesignatorType, code_set: CodeSet, id: &[u8]) -> Designator {
        Designator {
            code_set,
            association: Association::LogicalUnit,
            designator_type,
            protocol_id: None,
            id: id.to_vec(),
        }
    }

    #[test]
    fn wwid_preference_order() {
        let t10 = lu(DesignatorType::T10VendorId, CodeSet::Ascii, b"ACME    disk\\1\x01  ");
        let name = lu(
            DesignatorType::ScsiNameString,
            CodeSet::Utf8,
            b"eui.0123456789ABCDEF\0\0\0\0",
        );
        let eui8 = lu(
            DesignatorType::Eui64,
            CodeSet::Binary,
            &[0x00, 0x14, 0x05, 0, 0, 0, 0, 0x2a],
        );
        let eui16 = lu(DesignatorType::Eui64, CodeSet::Binary, &[0x11; 16]);
        let naa5 = lu(
            DesignatorType::Naa,
            CodeSet::Binary,
            &[0x50, 0x01, 0x40, 0x50, 0, 0, 0, 1],
        );
        let naa3 = lu(DesignatorType::Naa, CodeSet::Binary, &[0x30, 0, 0, 1, 0, 0, 0, 1]);

        assert_eq!(
            best_wwid(std::slice::from_ref(&t10)).unwrap().as_str(),
            "t10.ACME    disk\\x5c1\\x01"
        );
        assert_eq!(
            best_wwid(&[t10.clone(), name.clone()]).unwrap().as_str(),
            "eui.0123456789ABCDEF"
        );
        assert_eq!(
            best_wwid(&[name.clone(), eui8.clone(), t10.clone()]).unwrap().as_str(),
            "eui.001405000000002a"
        );
        assert_eq!(
            best_wwid(&[eui8.clone(), eui16.clone()]).unwrap().as_str(),
            format!("eui.{}", "11".repeat(16))
        );
        assert_eq!(
            best_wwid(&[eui16.clone(), naa3.clone()]).unwrap().as_str(),
            "naa.3000000100000001"
        );
        assert_eq!(
            best_wwid(&[naa3.clone(), naa5.clone()]).unwrap().as_str(),
            "naa.5001405000000001"
        );
        // Order in the page does not change the choice, except between equals (first wins).
        assert_eq!(
            best_wwid(&[naa5.clone(), naa3.clone()]),
            best_wwid(&[naa3.clone(), naa5.clone()])
        );
        let naa5b = lu(DesignatorType::Naa, CodeSet::Binary, &[0x50, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(
            best_wwid(&[naa5b.clone(), naa5.clone()]).unwrap().as_str(),
            "naa.5000000000000002"
        );
    }

    #[test]
    fn unfit_designators_give_no_wwid() {
        // Wrong code set, wrong length, unknown NAA type, non-LU association, empty strings.
        let bad = [
            lu(DesignatorType::Naa, CodeSet::Ascii, b"60014050"),
            lu(DesignatorType::Naa, CodeSet::Binary, &[0x60; 8]),
            lu(DesignatorType::Naa, CodeSet::Binary, &[0x10; 8]),
            lu(DesignatorType::Eui64, CodeSet::Binary, &[1; 9]),
            lu(DesignatorType::T10VendorId, CodeSet::Ascii, b"    \0\0"),
            lu(DesignatorType::ScsiNameString, CodeSet::Utf8, b"\0\0\0\0"),
            lu(DesignatorType::ScsiNameString, CodeSet::Utf8, b"\xff\xfe\0\0"),
            lu(DesignatorType::Md5LogicalUnitId, CodeSet::Binary, &[1; 16]),
            Designator {
                association: Association::TargetDevice,
                ..lu(DesignatorType::Naa, CodeSet::Binary, &[0x50; 8])
            },
        ];
        for d in &bad {
            assert_eq!(d.wwid(), None, "{d:?}");
        }
        assert_eq!(best_wwid(&bad), None);
        assert_eq!(best_wwid(&[]), None);
    }

    #[test]
    fn vpd_errors() {
        let b = unhex(TGTD_VPD83);
        assert_eq!(vpd_page_len(&b), Some(76));
        assert_eq!(
            parse_device_identification(&b[..64]),
            Err(DataError::Truncated {
                what: "device identification VPD page",
                needed: 76,
                got: 64
            })
        );
        assert!(matches!(
            parse_device_identification(&b[..3]),
            Err(DataError::Short { needed: 4, .. })
        ));
        assert_eq!(
            parse_unit_serial(&b),
            Err(DataError::WrongPage {
                what: "unit serial number VPD page",
                expected: 0x80,
                got: 0x83
            })
        );
        // A descriptor longer than the page: the page is damaged, not parsed in part.
        let mut bad = b.clone();
        bad[7] = 0x50;
        assert!(matches!(
            parse_device_identification(&bad),
            Err(DataError::Invalid { .. })
        ));
        // Page length 0: no designators.
        assert_eq!(parse_device_identification(&[0, 0x83, 0, 0]), Ok(vec![]));
    }

    #[test]
    fn tgtd_block_limits() {
        let l = BlockLimits::parse(&unhex(TGTD_VPDB0)).unwrap();
        assert_eq!(
            l,
            BlockLimits {
                max_compare_write_len: 128,
                ..Default::default()
            }
        );
    }

    #[test]
    fn block_limits_fields() {
        let mut b = vec![0u8; 64];
        b[1] = 0xb0;
        b[3] = 0x3c;
        b[4] = 0x01;
        b[6..8].copy_from_slice(&8u16.to_be_bytes());
        b[8..12].copy_from_slice(&0x4000u32.to_be_bytes());
        b[12..16].copy_from_slice(&0x800u32.to_be_bytes());
        b[20..24].copy_from_slice(&0x0040_0000u32.to_be_bytes());
        b[24..28].copy_from_slice(&1u32.to_be_bytes());
        b[28..32].copy_from_slice(&8u32.to_be_bytes());
        b[32..36].copy_from_slice(&0x8000_0003u32.to_be_bytes());
        b[36..44].copy_from_slice(&0x0040_0000u64.to_be_bytes());
        let l = BlockLimits::parse(&b).unwrap();
        assert!(l.wsnz);
        assert_eq!(l.opt_xfer_len_granularity, 8);
        assert_eq!((l.max_xfer_len, l.opt_xfer_len), (0x4000, 0x800));
        assert_eq!((l.max_unmap_lba_count, l.max_unmap_descriptors), (0x0040_0000, 1));
        assert_eq!(l.opt_unmap_granularity, 8);
        assert_eq!(l.unmap_granularity_alignment, Some(3));
        assert_eq!(l.max_write_same_len, 0x0040_0000);
        // An SBC-2 page of 12 bytes ends after the optimal transfer length.
        let mut old = b[..16].to_vec();
        old[3] = 0x0c;
        let l = BlockLimits::parse(&old).unwrap();
        assert_eq!(
            (l.max_xfer_len, l.opt_xfer_len, l.max_unmap_lba_count),
            (0x4000, 0x800, 0)
        );
        assert_eq!(l.unmap_granularity_alignment, None);
    }

    #[test]
    fn block_device_characteristics() {
        let mut b = vec![0u8; 68];
        b[1] = 0xb1;
        b[3] = 0x40;
        assert!(BlockDeviceCharacteristics::parse(&b).unwrap().is_rotational());
        b[5] = 1;
        b[7] = 0x03;
        let c = BlockDeviceCharacteristics::parse(&b).unwrap();
        assert!(!c.is_rotational());
        assert_eq!(c.form_factor, 3);
        b[4..6].copy_from_slice(&7200u16.to_be_bytes());
        let c = BlockDeviceCharacteristics::parse(&b).unwrap();
        assert_eq!(c.rotation_rate, 7200);
        assert!(c.is_rotational());
    }

    #[test]
    fn logical_block_provisioning() {
        assert_eq!(
            LogicalBlockProvisioning::parse(&unhex(TGTD_VPDB2)).unwrap(),
            LogicalBlockProvisioning::default()
        );
        // LIO with emulate_tpu/tpws: LBPU, LBPWS, LBPRZ, thin.
        let p = LogicalBlockProvisioning::parse(&[0x00, 0xb2, 0x00, 0x04, 0x00, 0xc4, 0x02, 0x00]).unwrap();
        assert!(p.lbpu && p.lbpws && !p.lbpws10 && p.lbprz && !p.anc_sup && !p.dp);
        assert_eq!(p.provisioning_type, ProvisioningType::Thin);
        // LBPRZ 010b (provisioning initialization pattern) is not "reads zeros".
        let p = LogicalBlockProvisioning::parse(&[0x00, 0xb2, 0x00, 0x04, 0x00, 0x08, 0x01, 0x00]).unwrap();
        assert!(!p.lbprz);
        assert_eq!(p.provisioning_type, ProvisioningType::Resource);
    }
}
