//! Command descriptor blocks (SPC-4 §4.2, SBC-3 §5) for the commands the initiator sends.
//!
//! Every builder returns a [`Cdb`] by value: a 16-byte array and a length, so the session
//! engine sends all commands the same way and the data path never allocates. Control bytes
//! are 0 (no NACA, no linked commands) and GROUP NUMBER fields are 0.

use crate::error::DataError;

/// Operation codes used here.
pub mod opcode {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const UNMAP: u8 = 0x42;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
    pub const MAINTENANCE_IN: u8 = 0xa3;
    /// MAINTENANCE IN service action for REPORT TARGET PORT GROUPS (SPC-4 §6.27).
    pub const SA_REPORT_TARGET_PORT_GROUPS: u8 = 0x0a;
    /// SERVICE ACTION IN(16) service action for READ CAPACITY(16) (SBC-3 §5.16).
    pub const SA_READ_CAPACITY_16: u8 = 0x10;
}

/// Direction of a command's data transfer, for the R and W bits of the SCSI Command PDU
/// (RFC 7143 §11.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirection {
    /// No data moves.
    NoData,
    /// Data-In: target to initiator.
    Read,
    /// Data-Out: initiator to target.
    Write,
}

/// A CDB of 6 to 16 bytes. The bytes after `len` are zero, so the whole array can go into
/// the 16-byte CDB field of the SCSI Command PDU (RFC 7143 §11.3.5) as it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cdb {
    bytes: [u8; 16],
    len: u8,
}

impl Cdb {
    fn from_array<const N: usize>(b: [u8; N]) -> Cdb {
        const { assert!(N >= 6 && N <= 16) };
        let mut bytes = [0u8; 16];
        bytes[..N].copy_from_slice(&b);
        // N <= 16 is checked at compile time above.
        #[allow(clippy::cast_possible_truncation)]
        let len = N as u8;
        Cdb { bytes, len }
    }

    /// A CDB from raw bytes, for commands without a builder here: 6 to 16 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Cdb, DataError> {
        let len = u8::try_from(b.len())
            .ok()
            .filter(|n| (6..=16).contains(n))
            .ok_or(DataError::Invalid {
                what: "CDB",
                reason: "a CDB is 6 to 16 bytes long",
            })?;
        let mut bytes = [0u8; 16];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Cdb { bytes, len })
    }

    /// The CDB bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The 16-byte CDB field of the SCSI Command PDU, zero padded.
    pub fn padded(&self) -> &[u8; 16] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a CDB has at least 6 bytes. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn opcode(&self) -> u8 {
        self.bytes[0]
    }

    /// The data direction of the commands this module builds; None for other opcodes, whose
    /// direction the caller must know.
    pub fn direction(&self) -> Option<DataDirection> {
        use opcode::*;
        Some(match self.opcode() {
            TEST_UNIT_READY | SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => DataDirection::NoData,
            REQUEST_SENSE | INQUIRY | MODE_SENSE_6 | MODE_SENSE_10 | READ_CAPACITY_10 | READ_10 | READ_16
            | SERVICE_ACTION_IN_16 | REPORT_LUNS | MAINTENANCE_IN => DataDirection::Read,
            WRITE_10 | WRITE_16 | UNMAP => DataDirection::Write,
            // NDOB: no data-out buffer, the device writes zeros (SBC-3 §5.45).
            WRITE_SAME_16 if self.bytes[1] & 0x01 != 0 => DataDirection::NoData,
            WRITE_SAME_16 => DataDirection::Write,
            _ => return None,
        })
    }
}

impl AsRef<[u8]> for Cdb {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Cdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cdb(")?;
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// FUA bit in byte 1 of READ/WRITE(10/16): complete only once the data is on the medium.
const FUA: u8 = 0x08;

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

/// TEST UNIT READY (SPC-4 §6.47).
pub fn test_unit_ready() -> Cdb {
    Cdb::from_array([opcode::TEST_UNIT_READY, 0, 0, 0, 0, 0])
}

/// Standard INQUIRY (SPC-4 §6.6): at least 36 bytes are needed for the identification fields.
pub fn inquiry(alloc_len: u16) -> Cdb {
    let [hi, lo] = alloc_len.to_be_bytes();
    Cdb::from_array([opcode::INQUIRY, 0, 0, hi, lo, 0])
}

/// INQUIRY for vital product data page `page` (EVPD=1, SPC-4 §6.6).
pub fn inquiry_vpd(page: u8, alloc_len: u16) -> Cdb {
    let [hi, lo] = alloc_len.to_be_bytes();
    Cdb::from_array([opcode::INQUIRY, 0x01, page, hi, lo, 0])
}

/// REPORT LUNS with SELECT REPORT 0, all LUNs of the target (SPC-4 §6.33). SPC requires an
/// allocation length of at least 16.
pub fn report_luns(alloc_len: u32) -> Cdb {
    let mut b = [0u8; 12];
    b[0] = opcode::REPORT_LUNS;
    put32(&mut b, 6, alloc_len);
    Cdb::from_array(b)
}

/// READ CAPACITY(10) (SBC-3 §5.15); the response is 8 bytes.
pub fn read_capacity10() -> Cdb {
    Cdb::from_array([opcode::READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
}

/// READ CAPACITY(16), SERVICE ACTION IN(16) 0x10 (SBC-3 §5.16); the response is 32 bytes.
pub fn read_capacity16(alloc_len: u32) -> Cdb {
    let mut b = [0u8; 16];
    b[0] = opcode::SERVICE_ACTION_IN_16;
    b[1] = opcode::SA_READ_CAPACITY_16;
    put32(&mut b, 10, alloc_len);
    Cdb::from_array(b)
}

/// REPORT TARGET PORT GROUPS (SPC-4 §6.27), asking for the extended header (PARAMETER DATA
/// FORMAT 001b), which carries the implicit transition time; targets that do not know it answer
/// in the length-only format, which [`crate::alua::parse_target_port_groups`] also reads.
pub fn report_target_port_groups(alloc_len: u32) -> Cdb {
    let mut b = [0u8; 12];
    b[0] = opcode::MAINTENANCE_IN;
    b[1] = 0x20 | opcode::SA_REPORT_TARGET_PORT_GROUPS;
    put32(&mut b, 6, alloc_len);
    Cdb::from_array(b)
}

fn rw10(op: u8, flags: u8, lba: u32, blocks: u16) -> Cdb {
    let mut b = [0u8; 10];
    b[0] = op;
    b[1] = flags;
    put32(&mut b, 2, lba);
    b[7..9].copy_from_slice(&blocks.to_be_bytes());
    Cdb::from_array(b)
}

fn rw16(op: u8, flags: u8, lba: u64, blocks: u32) -> Cdb {
    let mut b = [0u8; 16];
    b[0] = op;
    b[1] = flags;
    put64(&mut b, 2, lba);
    put32(&mut b, 10, blocks);
    Cdb::from_array(b)
}

/// READ(10) (SBC-3 §5.11).
pub fn read10(lba: u32, blocks: u16) -> Cdb {
    rw10(opcode::READ_10, 0, lba, blocks)
}

/// READ(16) (SBC-3 §5.13).
pub fn read16(lba: u64, blocks: u32) -> Cdb {
    rw16(opcode::READ_16, 0, lba, blocks)
}

/// WRITE(10) (SBC-3 §5.32); `fua` asks for the data to be on the medium before completion.
pub fn write10(lba: u32, blocks: u16, fua: bool) -> Cdb {
    rw10(opcode::WRITE_10, if fua { FUA } else { 0 }, lba, blocks)
}

/// WRITE(16) (SBC-3 §5.34).
pub fn write16(lba: u64, blocks: u32, fua: bool) -> Cdb {
    rw16(opcode::WRITE_16, if fua { FUA } else { 0 }, lba, blocks)
}

/// The (10) form fits when the LBA, the transfer length and the end of the range fit in its
/// fields. The end check is Linux sd's: it keeps an I/O that starts below 2^32 but ends above
/// it on the (16) form, which targets handle consistently.
fn fits10(lba: u64, blocks: u32) -> Option<(u32, u16)> {
    let end = lba.checked_add(u64::from(blocks))?;
    if end > u64::from(u32::MAX) {
        return None;
    }
    Some((u32::try_from(lba).ok()?, u16::try_from(blocks).ok()?))
}

/// READ(10) when the range fits it, READ(16) otherwise.
pub fn read(lba: u64, blocks: u32) -> Cdb {
    match fits10(lba, blocks) {
        Some((lba, blocks)) => read10(lba, blocks),
        None => read16(lba, blocks),
    }
}

/// WRITE(10) when the range fits it, WRITE(16) otherwise.
pub fn write(lba: u64, blocks: u32, fua: bool) -> Cdb {
    match fits10(lba, blocks) {
        Some((lba, blocks)) => write10(lba, blocks, fua),
        None => write16(lba, blocks, fua),
    }
}

/// SYNCHRONIZE CACHE(10) (SBC-3 §5.22); `blocks` 0 means from `lba` to the end of the LU, so
/// `synchronize_cache10(0, 0)` flushes everything. IMMED is 0: completion means the data is
/// on the medium, which is what a flush request promises.
pub fn synchronize_cache10(lba: u32, blocks: u16) -> Cdb {
    rw10(opcode::SYNCHRONIZE_CACHE_10, 0, lba, blocks)
}

/// SYNCHRONIZE CACHE(16) (SBC-3 §5.23).
pub fn synchronize_cache16(lba: u64, blocks: u32) -> Cdb {
    rw16(opcode::SYNCHRONIZE_CACHE_16, 0, lba, blocks)
}

/// UNMAP (SBC-3 §5.28) with a parameter list of `param_len` bytes, as written by
/// [`write_unmap_params`].
pub fn unmap(param_len: u16) -> Cdb {
    let [hi, lo] = param_len.to_be_bytes();
    Cdb::from_array([opcode::UNMAP, 0, 0, 0, 0, 0, 0, hi, lo, 0])
}

/// Bytes of an UNMAP parameter list header and of one block descriptor (SBC-3 §5.28.2).
pub const UNMAP_HEADER_LEN: usize = 8;
pub const UNMAP_DESCRIPTOR_LEN: usize = 16;
/// The most descriptors one parameter list can hold: its length must fit the 16-bit
/// PARAMETER LIST LENGTH. The LU's own limit (Block Limits VPD) is usually lower.
pub const UNMAP_MAX_DESCRIPTORS: usize = (u16::MAX as usize - UNMAP_HEADER_LEN) / UNMAP_DESCRIPTOR_LEN;

/// Writes the UNMAP parameter list (SBC-3 §5.28.2) for `ranges` of (first LBA, number of
/// blocks) into `buf` and returns its length, to pass to [`unmap`] and send as Data-Out.
pub fn write_unmap_params(buf: &mut [u8], ranges: &[(u64, u32)]) -> Result<u16, DataError> {
    if ranges.len() > UNMAP_MAX_DESCRIPTORS {
        return Err(DataError::TooMany {
            what: "UNMAP block descriptors",
            count: ranges.len(),
            max: UNMAP_MAX_DESCRIPTORS,
        });
    }
    let desc_len = ranges.len() * UNMAP_DESCRIPTOR_LEN;
    let total = UNMAP_HEADER_LEN + desc_len;
    if buf.len() < total {
        return Err(DataError::BufferTooSmall {
            what: "UNMAP parameter list",
            needed: total,
            got: buf.len(),
        });
    }
    let too_long = DataError::TooMany {
        what: "UNMAP block descriptors",
        count: ranges.len(),
        max: UNMAP_MAX_DESCRIPTORS,
    };
    let total16 = u16::try_from(total).map_err(|_| too_long.clone())?;
    let desc16 = u16::try_from(desc_len).map_err(|_| too_long)?;
    // UNMAP DATA LENGTH counts the bytes after itself.
    buf[0..2].copy_from_slice(&(total16 - 2).to_be_bytes());
    buf[2..4].copy_from_slice(&desc16.to_be_bytes());
    buf[4..8].fill(0);
    for (d, &(lba, blocks)) in buf[UNMAP_HEADER_LEN..total]
        .chunks_exact_mut(UNMAP_DESCRIPTOR_LEN)
        .zip(ranges)
    {
        put64(d, 0, lba);
        put32(d, 8, blocks);
        d[12..16].fill(0);
    }
    Ok(total16)
}

/// WRITE SAME(16) (SBC-3 §5.45). With `unmap` the device may deallocate the blocks instead of
/// writing them; with `ndob` no data is sent and the blocks read back as zeros, otherwise one
/// block of data follows as Data-Out.
pub fn write_same16(lba: u64, blocks: u32, unmap: bool, ndob: bool) -> Cdb {
    let flags = (u8::from(unmap) << 3) | u8::from(ndob);
    rw16(opcode::WRITE_SAME_16, flags, lba, blocks)
}

/// MODE SENSE(6) (SPC-4 §6.11) for current values of `page` (low 6 bits) / `subpage`; `dbd`
/// asks the device not to return block descriptors.
pub fn mode_sense6(page: u8, subpage: u8, dbd: bool, alloc_len: u8) -> Cdb {
    Cdb::from_array([
        opcode::MODE_SENSE_6,
        u8::from(dbd) << 3,
        page & 0x3f,
        subpage,
        alloc_len,
        0,
    ])
}

/// MODE SENSE(10) (SPC-4 §6.12), like [`mode_sense6`] with a 16-bit allocation length.
pub fn mode_sense10(page: u8, subpage: u8, dbd: bool, alloc_len: u16) -> Cdb {
    let [hi, lo] = alloc_len.to_be_bytes();
    Cdb::from_array([
        opcode::MODE_SENSE_10,
        u8::from(dbd) << 3,
        page & 0x3f,
        subpage,
        0,
        0,
        0,
        hi,
        lo,
        0,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(c: Cdb) -> String {
        c.as_slice().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// CDBs as libiscsi 1.19 sends them (captured from iscsi-ls / iscsi-inq /
    /// iscsi-readcapacity16 / iscsi-swp against tgtd).
    #[test]
    fn same_bytes_as_libiscsi() {
        assert_eq!(hex(test_unit_ready()), "000000000000");
        assert_eq!(hex(inquiry(64)), "120000004000");
        assert_eq!(hex(inquiry_vpd(0x83, 0x4c)), "120183004c00");
        assert_eq!(hex(report_luns(16)), "a00000000000000000100000");
        assert_eq!(hex(read_capacity10()), "25000000000000000000");
        assert_eq!(hex(read_capacity16(32)), "9e100000000000000000000000200000");
        assert_eq!(hex(mode_sense10(0x0a, 0, true, 255)), "5a080a0000000000ff00");
    }

    /// MAINTENANCE IN, service action 0x0a with PARAMETER DATA FORMAT 001b in the top bits of
    /// byte 1, allocation length in bytes 6-9 (SPC-4 §6.27.1, table 254).
    #[test]
    fn report_target_port_groups_cdb() {
        let c = report_target_port_groups(0x1234);
        assert_eq!(hex(c), "a32a00000000000012340000");
        assert_eq!(c.direction(), Some(DataDirection::Read));
    }

    #[test]
    fn read_write() {
        assert_eq!(hex(read10(0x0102_0304, 0x0506)), "28000102030400050600");
        assert_eq!(hex(write10(0x10, 8, true)), "2a080000001000000800");
        assert_eq!(hex(write10(0x10, 8, false)), "2a000000001000000800");
        assert_eq!(
            hex(read16(0x0102_0304_0506_0708, 0x090a_0b0c)),
            "88000102030405060708090a0b0c0000"
        );
        assert_eq!(hex(write16(1, 2, true)), "8a080000000000000001000000020000");
    }

    #[test]
    fn automatic_size() {
        assert_eq!(read(0, 8).opcode(), opcode::READ_10);
        assert_eq!(read(0, 65535).opcode(), opcode::READ_10);
        assert_eq!(read(0, 65536).opcode(), opcode::READ_16);
        assert_eq!(read(u64::from(u32::MAX) - 8, 8).opcode(), opcode::READ_10);
        assert_eq!(read(u64::from(u32::MAX) - 8, 9).opcode(), opcode::READ_16);
        assert_eq!(read(u64::from(u32::MAX) + 1, 1).opcode(), opcode::READ_16);
        assert_eq!(read(u64::MAX, 1).opcode(), opcode::READ_16);
        let w = write(1 << 33, 16, true);
        assert_eq!(hex(w), "8a080000000200000000000000100000");
        assert_eq!(write(7, 1, false), write10(7, 1, false));
    }

    #[test]
    fn sync_cache() {
        assert_eq!(hex(synchronize_cache10(0, 0)), "35000000000000000000");
        assert_eq!(
            hex(synchronize_cache16(0x100, 0x20)),
            "91000000000000000100000000200000"
        );
    }

    #[test]
    fn unmap_cdb_and_params() {
        let mut buf = [0xffu8; 64];
        let n = write_unmap_params(&mut buf, &[(0x1000, 0x80), (0x0001_0000_0000, 0x10)]).unwrap();
        assert_eq!(n, 40);
        let expected: [u8; 40] = [
            0x00, 0x26, 0x00, 0x20, 0, 0, 0, 0, // 38 bytes follow; 32 bytes of descriptors
            0, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 0, 0, 0x80, 0, 0, 0, 0, //
            0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0,
        ];
        assert_eq!(buf[..40], expected);
        assert_eq!(buf[40], 0xff, "nothing written past the list");
        assert_eq!(hex(unmap(n)), "42000000000000002800");
        assert_eq!(write_unmap_params(&mut buf[..8], &[]), Ok(8));
        assert_eq!(buf[..8], [0, 6, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn unmap_params_limits() {
        let mut small = [0u8; 23];
        assert_eq!(
            write_unmap_params(&mut small, &[(0, 1)]),
            Err(DataError::BufferTooSmall {
                what: "UNMAP parameter list",
                needed: 24,
                got: 23
            })
        );
        let many = vec![(0u64, 1u32); UNMAP_MAX_DESCRIPTORS + 1];
        let mut big = vec![0u8; 70_000];
        assert!(matches!(
            write_unmap_params(&mut big, &many),
            Err(DataError::TooMany { max: 4095, .. })
        ));
        let n = write_unmap_params(&mut big, &many[1..]).unwrap();
        assert_eq!(usize::from(n), 8 + 16 * 4095);
    }

    #[test]
    fn write_same() {
        assert_eq!(
            hex(write_same16(0x20, 0x100, true, false)),
            "93080000000000000020000001000000"
        );
        assert_eq!(hex(write_same16(0, 1, true, true)), "93090000000000000000000000010000");
        assert_eq!(write_same16(0, 1, true, true).direction(), Some(DataDirection::NoData));
        assert_eq!(write_same16(0, 1, true, false).direction(), Some(DataDirection::Write));
    }

    #[test]
    fn mode_sense() {
        assert_eq!(hex(mode_sense6(0x08, 0, false, 0xc0)), "1a000800c000");
        assert_eq!(hex(mode_sense6(0x3f, 0xff, true, 0xff)), "1a083fffff00");
        assert_eq!(hex(mode_sense10(0x08, 0, false, 0x200)), "5a000800000000020000");
        // Page codes are 6 bits; the page control bits stay 0 (current values).
        assert_eq!(mode_sense6(0xc8, 0, false, 4).as_slice()[2], 0x08);
    }

    #[test]
    fn cdb_type() {
        let c = read16(1, 1);
        assert_eq!(c.len(), 16);
        assert!(!c.is_empty());
        let r = report_luns(16);
        assert_eq!(r.len(), 12);
        assert_eq!(&r.padded()[12..], &[0, 0, 0, 0]);
        assert_eq!(format!("{:?}", test_unit_ready()), "Cdb(000000000000)");
        assert_eq!(
            Cdb::from_slice(&[0x12, 1, 0x80, 0, 0xff, 0]).unwrap(),
            inquiry_vpd(0x80, 0xff)
        );
        assert!(Cdb::from_slice(&[0; 5]).is_err());
        assert!(Cdb::from_slice(&[0; 17]).is_err());
        assert_eq!(Cdb::from_slice(&[0xc0; 6]).unwrap().direction(), None);
        assert_eq!(read(0, 1).direction(), Some(DataDirection::Read));
        assert_eq!(write(0, 1, false).direction(), Some(DataDirection::Write));
        assert_eq!(unmap(24).direction(), Some(DataDirection::Write));
        assert_eq!(synchronize_cache10(0, 0).direction(), Some(DataDirection::NoData));
        assert_eq!(inquiry(36).direction(), Some(DataDirection::Read));
    }
}
