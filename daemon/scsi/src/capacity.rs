//! READ CAPACITY parameter data (SBC-3 §5.15 for the (10) form, §5.16 for the (16) form).

use crate::bytes::{be16, be32, be64};
use crate::error::DataError;

/// Bytes of READ CAPACITY(10) data.
pub const READ_CAPACITY10_LEN: usize = 8;
/// Bytes of READ CAPACITY(16) data: the allocation length to ask for.
pub const READ_CAPACITY16_LEN: usize = 32;

/// The size and layout of a logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capacity {
    /// Number of logical blocks (RETURNED LOGICAL BLOCK ADDRESS + 1).
    pub blocks: u64,
    /// Logical block length in bytes; never 0.
    pub block_size: u32,
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT: 2^n logical blocks per physical block
    /// (3 for 512-byte blocks on 4 KiB sectors). 0 from READ CAPACITY(10).
    pub phys_block_exp: u8,
    /// LOWEST ALIGNED LOGICAL BLOCK ADDRESS: the first LBA at a physical block boundary.
    pub lowest_aligned_lba: u16,
    /// LBPME: logical block provisioning (thin provisioning, UNMAP) is enabled.
    pub lbpme: bool,
    /// LBPRZ: unmapped blocks read back as zeros.
    pub lbprz: bool,
    /// Protection information type (1 to 3) when PROT_EN is set; None when disabled.
    pub protection: Option<u8>,
}

impl Capacity {
    /// Parses READ CAPACITY(10) data. When the LU has more than 2^32 - 1 blocks (RETURNED
    /// LOGICAL BLOCK ADDRESS 0xFFFF_FFFF), returns [`DataError::NeedsReadCapacity16`]: issue
    /// READ CAPACITY(16) instead.
    pub fn parse10(b: &[u8]) -> Result<Capacity, DataError> {
        const WHAT: &str = "READ CAPACITY(10) data";
        let (Some(last_lba), Some(block_size)) = (be32(b, 0), be32(b, 4)) else {
            return Err(DataError::Short {
                what: WHAT,
                needed: READ_CAPACITY10_LEN,
                got: b.len(),
            });
        };
        if last_lba == u32::MAX {
            return Err(DataError::NeedsReadCapacity16);
        }
        Self::checked(WHAT, u64::from(last_lba), block_size)
    }

    /// Parses READ CAPACITY(16) data. The first 12 bytes (last LBA, block length) are
    /// required; the layout and provisioning fields read as 0 when a target sends fewer than
    /// 32 bytes.
    pub fn parse16(b: &[u8]) -> Result<Capacity, DataError> {
        const WHAT: &str = "READ CAPACITY(16) data";
        let (Some(last_lba), Some(block_size)) = (be64(b, 0), be32(b, 8)) else {
            return Err(DataError::Short {
                what: WHAT,
                needed: 12,
                got: b.len(),
            });
        };
        let mut c = Self::checked(WHAT, last_lba, block_size)?;
        let prot = b.get(12).copied().unwrap_or(0);
        c.protection = (prot & 0x01 != 0).then_some(((prot >> 1) & 0x07) + 1);
        c.phys_block_exp = b.get(13).map_or(0, |e| e & 0x0f);
        let tail = be16(b, 14).unwrap_or(0);
        c.lbpme = tail & 0x8000 != 0;
        c.lbprz = tail & 0x4000 != 0;
        c.lowest_aligned_lba = tail & 0x3fff;
        Ok(c)
    }

    /// Rejects what would break the device layer: a zero block length (division by zero),
    /// and sizes whose byte count does not fit in u64.
    fn checked(what: &'static str, last_lba: u64, block_size: u32) -> Result<Capacity, DataError> {
        if block_size == 0 {
            return Err(DataError::Invalid {
                what,
                reason: "logical block length is 0",
            });
        }
        let blocks = last_lba
            .checked_add(1)
            .filter(|n| n.checked_mul(u64::from(block_size)).is_some())
            .ok_or(DataError::Invalid {
                what,
                reason: "capacity exceeds 2^64 bytes",
            })?;
        Ok(Capacity {
            blocks,
            block_size,
            phys_block_exp: 0,
            lowest_aligned_lba: 0,
            lbpme: false,
            lbprz: false,
            protection: None,
        })
    }

    /// Size in bytes; cannot overflow, the parsers reject such capacities.
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }

    /// Physical block size in bytes (block_size × 2^phys_block_exp).
    pub fn physical_block_size(&self) -> u64 {
        u64::from(self.block_size) << self.phys_block_exp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::unhex;

    /// tgtd, 64 MiB file with 512-byte blocks on a 4 KiB-sector host (captured).
    const TGTD_RC16: &str = "000000000001ffff000002000003000000000000000000000000000000000000";
    const TGTD_RC10: &str = "0001ffff00000200";

    #[test]
    fn tgtd_capacity() {
        let c = Capacity::parse16(&unhex(TGTD_RC16)).unwrap();
        assert_eq!((c.blocks, c.block_size, c.phys_block_exp), (131_072, 512, 3));
        assert_eq!(c.bytes(), 64 << 20);
        assert_eq!(c.physical_block_size(), 4096);
        assert!(!c.lbpme && !c.lbprz);
        assert_eq!((c.lowest_aligned_lba, c.protection), (0, None));
        let c10 = Capacity::parse10(&unhex(TGTD_RC10)).unwrap();
        assert_eq!((c10.blocks, c10.block_size, c10.bytes()), (131_072, 512, 64 << 20));
    }

    #[test]
    fn rc10_asks_for_rc16() {
        assert_eq!(
            Capacity::parse10(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0]),
            Err(DataError::NeedsReadCapacity16)
        );
        // 0xffff_fffe is still a (10) answer: 2^32 - 1 blocks.
        let c = Capacity::parse10(&[0xff, 0xff, 0xff, 0xfe, 0, 0, 0x10, 0]).unwrap();
        assert_eq!(c.blocks, 0xffff_ffff);
        assert_eq!(c.bytes(), 0xffff_ffff * 4096);
    }

    #[test]
    fn rc16_flags() {
        // 4 KiB blocks, 2^33 blocks, PROT_EN type 2, exponent 0, LBPME + LBPRZ, lowest aligned 7.
        let b = unhex("00000001ffffffff 00001000 03 00 c007 0000000000000000000000000000");
        let c = Capacity::parse16(&b).unwrap();
        assert_eq!(c.blocks, 1 << 33);
        assert_eq!(c.bytes(), 1 << 45);
        assert_eq!(c.protection, Some(2));
        assert!(c.lbpme && c.lbprz);
        assert_eq!(c.lowest_aligned_lba, 7);
        // Only the first 12 bytes: flags read as 0.
        let c = Capacity::parse16(&b[..12]).unwrap();
        assert_eq!((c.protection, c.lbpme, c.lowest_aligned_lba), (None, false, 0));
    }

    #[test]
    fn bad_capacity_data() {
        assert_eq!(
            Capacity::parse10(&[0; 7]),
            Err(DataError::Short {
                what: "READ CAPACITY(10) data",
                needed: 8,
                got: 7
            })
        );
        assert!(matches!(
            Capacity::parse16(&[0; 11]),
            Err(DataError::Short { needed: 12, .. })
        ));
        assert!(matches!(
            Capacity::parse10(&[0, 0, 0, 1, 0, 0, 0, 0]),
            Err(DataError::Invalid { .. })
        ));
        // Last LBA u64::MAX: the block count does not fit.
        let b = unhex("ffffffffffffffff00000200");
        assert!(matches!(Capacity::parse16(&b), Err(DataError::Invalid { .. })));
        // 2^55 blocks of 1 KiB: more bytes than u64 holds.
        let b = unhex("007fffffffffffff00000400");
        assert!(matches!(Capacity::parse16(&b), Err(DataError::Invalid { .. })));
        // 2^53 blocks of 1 KiB (2^63 bytes) still fit.
        let b = unhex("001fffffffffffff00000400");
        assert_eq!(Capacity::parse16(&b).unwrap().bytes(), 1 << 63);
    }
}
