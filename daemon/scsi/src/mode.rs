//! MODE SENSE parameter data (SPC-4 §7.5): the mode parameter header of the (6) and (10)
//! forms, the mode pages that follow the block descriptors, and the Caching mode page
//! (SBC-3 §6.4.5).

use crate::bytes::be16;
use crate::error::DataError;

/// Page code of the Caching mode page.
pub const CACHING_PAGE: u8 = 0x08;
/// Page code of the Control mode page (SPC-4 §7.5.8).
pub const CONTROL_PAGE: u8 = 0x0a;
/// Page code that asks for all pages.
pub const ALL_PAGES: u8 = 0x3f;

/// The mode parameter header (SPC-4 §7.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeHeader {
    pub medium_type: u8,
    /// DEVICE-SPECIFIC PARAMETER as sent; for disks decoded into the two fields below.
    pub device_specific: u8,
    /// WP (SBC-3 §6.4.1): the LU is write protected.
    pub write_protected: bool,
    /// DPOFUA (SBC-3 §6.4.1): the DPO and FUA bits are supported, so durability can be asked
    /// per write with FUA.
    pub dpofua: bool,
    /// LONGLBA (MODE SENSE(10) only): block descriptors are 16 bytes long.
    pub long_lba: bool,
    pub block_descriptor_len: u16,
}

impl ModeHeader {
    fn new(medium_type: u8, device_specific: u8, long_lba: bool, block_descriptor_len: u16) -> Self {
        ModeHeader {
            medium_type,
            device_specific,
            write_protected: device_specific & 0x80 != 0,
            dpofua: device_specific & 0x10 != 0,
            long_lba,
            block_descriptor_len,
        }
    }
}

/// One mode page: its code, subpage (0 for page_0 format) and parameter bytes after the
/// page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModePage<'a> {
    pub code: u8,
    pub subpage: u8,
    /// PS: the page can be saved.
    pub saveable: bool,
    pub data: &'a [u8],
}

/// Parsed MODE SENSE data, borrowing the response buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSense<'a> {
    pub header: ModeHeader,
    pages: &'a [u8],
}

impl<'a> ModeSense<'a> {
    /// MODE SENSE(6) data: 4-byte header, MODE DATA LENGTH in byte 0.
    pub fn parse6(b: &'a [u8]) -> Result<Self, DataError> {
        const WHAT: &str = "MODE SENSE(6) data";
        if b.len() < 4 {
            return Err(DataError::Short {
                what: WHAT,
                needed: 4,
                got: b.len(),
            });
        }
        let header = ModeHeader::new(b[1], b[2], false, u16::from(b[3]));
        Self::split(WHAT, b, usize::from(b[0]) + 1, 4, header)
    }

    /// MODE SENSE(10) data: 8-byte header, MODE DATA LENGTH in bytes 0-1.
    pub fn parse10(b: &'a [u8]) -> Result<Self, DataError> {
        const WHAT: &str = "MODE SENSE(10) data";
        let (Some(mdl), Some(bdl)) = (be16(b, 0), be16(b, 6)) else {
            return Err(DataError::Short {
                what: WHAT,
                needed: 8,
                got: b.len(),
            });
        };
        let header = ModeHeader::new(b[2], b[3], b[4] & 0x01 != 0, bdl);
        Self::split(WHAT, b, usize::from(mdl) + 2, 8, header)
    }

    /// Finds the pages after the block descriptors. The data ends at the MODE DATA LENGTH or
    /// the end of the buffer, whichever comes first: a response cut by the allocation length
    /// simply has fewer pages, and [`ModeSense::pages`] yields only complete ones.
    fn split(
        what: &'static str,
        b: &'a [u8],
        total: usize,
        header_len: usize,
        header: ModeHeader,
    ) -> Result<Self, DataError> {
        if total < header_len {
            return Err(DataError::Invalid {
                what,
                reason: "mode data length is smaller than the header",
            });
        }
        let start = header_len + usize::from(header.block_descriptor_len);
        if start > total {
            return Err(DataError::Invalid {
                what,
                reason: "block descriptors run past the mode data length",
            });
        }
        let end = total.min(b.len());
        if start > end {
            return Err(DataError::Truncated {
                what,
                needed: total,
                got: b.len(),
            });
        }
        Ok(ModeSense {
            header,
            pages: &b[start..end],
        })
    }

    /// The complete mode pages, in order.
    pub fn pages(&self) -> ModePages<'a> {
        ModePages { rest: self.pages }
    }

    /// The page with this code and subpage, if it came back whole.
    pub fn find_page(&self, code: u8, subpage: u8) -> Option<ModePage<'a>> {
        self.pages().find(|p| p.code == code && p.subpage == subpage)
    }

    /// The Caching mode page, if the response holds it whole (a page too short to carry
    /// the WCE byte counts as absent).
    pub fn caching(&self) -> Option<CachingPage> {
        self.find_page(CACHING_PAGE, 0).and_then(|p| CachingPage::parse(p).ok())
    }
}

/// Iterator over mode pages (SPC-4 §7.5.7): page_0 format (SPF=0, 2-byte header) and
/// sub_page format (SPF=1, 4-byte header). Stops at a page that does not fit.
#[derive(Debug, Clone)]
pub struct ModePages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ModePages<'a> {
    type Item = ModePage<'a>;

    fn next(&mut self) -> Option<ModePage<'a>> {
        let b = self.rest;
        let first = *b.first()?;
        let (subpage, header_len, len) = if first & 0x40 != 0 {
            (*b.get(1)?, 4, usize::from(be16(b, 2)?))
        } else {
            (0, 2, usize::from(*b.get(1)?))
        };
        let Some(data) = b.get(header_len..header_len + len) else {
            self.rest = &[];
            return None;
        };
        self.rest = &b[header_len + len..];
        Some(ModePage {
            code: first & 0x3f,
            subpage,
            saveable: first & 0x80 != 0,
            data,
        })
    }
}

/// The Caching mode page (SBC-3 §6.4.5), the bits that decide the flush policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachingPage {
    /// WCE: write-back cache enabled, so writes need SYNCHRONIZE CACHE or FUA to be durable.
    pub wce: bool,
    /// RCD: read cache disabled.
    pub rcd: bool,
}

impl CachingPage {
    pub fn parse(page: ModePage<'_>) -> Result<Self, DataError> {
        let flags = *page.data.first().ok_or(DataError::Short {
            what: "Caching mode page",
            needed: 3,
            got: 2,
        })?;
        Ok(CachingPage {
            wce: flags & 0x04 != 0,
            rcd: flags & 0x01 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::unhex;

    /// tgtd's answer to libiscsi's MODE SENSE(10) for the Control page with DBD (captured):
    /// DPOFUA set, no block descriptors.
    const TGTD_CONTROL10: &str = "00120010 00000000 0a0a0210000000000000 0200";

    #[test]
    fn tgtd_mode_sense10() {
        let b = unhex(TGTD_CONTROL10);
        let m = ModeSense::parse10(&b).unwrap();
        assert_eq!(m.header.medium_type, 0);
        assert!(m.header.dpofua && !m.header.write_protected);
        assert_eq!(m.header.block_descriptor_len, 0);
        let pages: Vec<_> = m.pages().collect();
        assert_eq!(pages.len(), 1);
        assert_eq!(
            (pages[0].code, pages[0].subpage, pages[0].data.len()),
            (CONTROL_PAGE, 0, 10)
        );
        assert_eq!(m.caching(), None);
    }

    /// MODE SENSE(6) for all pages: WP, one 8-byte block descriptor (512-byte blocks), a
    /// saveable Caching page with WCE, a sub_page format page 0x0a/0x01, and a page cut off by
    /// the allocation length.
    fn six() -> Vec<u8> {
        unhex(
            "33 00 80 08  00000000 00000200
             88 12 04 00 ffff 0000 ffff ffff 0000 0000 0000 0000
             4a 01 0004 01020304
             1c 0a 0000",
        )
    }

    #[test]
    fn mode_sense6_pages() {
        let b = six();
        // Mode data length 0x33 + 1 = 52 bytes, more than the 44 that arrived.
        assert_eq!(b.len(), 44);
        let m = ModeSense::parse6(&b).unwrap();
        assert!(m.header.write_protected && !m.header.dpofua);
        assert_eq!(m.header.block_descriptor_len, 8);
        let pages: Vec<_> = m
            .pages()
            .map(|p| (p.code, p.subpage, p.saveable, p.data.len()))
            .collect();
        assert_eq!(pages, vec![(0x08, 0, true, 0x12), (0x0a, 0x01, false, 4)]);
        assert_eq!(m.find_page(0x0a, 0x01).unwrap().data, &[1, 2, 3, 4]);
        assert_eq!(m.find_page(0x1c, 0), None);
        assert_eq!(m.caching(), Some(CachingPage { wce: true, rcd: false }));
    }

    #[test]
    fn caching_bits() {
        // MODE SENSE(10), DBD, caching page with WCE clear and RCD set.
        let b = unhex("001a 00 00 00 00 0000 08 12 01 00 0000000000000000000000000000 0000");
        let m = ModeSense::parse10(&b).unwrap();
        assert_eq!(m.caching(), Some(CachingPage { wce: false, rcd: true }));
        let empty = ModePage {
            code: 8,
            subpage: 0,
            saveable: false,
            data: &[],
        };
        assert!(CachingPage::parse(empty).is_err());
    }

    #[test]
    fn bad_mode_data() {
        assert!(matches!(
            ModeSense::parse6(&[3, 0, 0]),
            Err(DataError::Short { needed: 4, .. })
        ));
        assert!(matches!(
            ModeSense::parse10(&[0, 6, 0, 0, 0, 0, 0]),
            Err(DataError::Short { needed: 8, .. })
        ));
        // Mode data length smaller than the header itself.
        assert!(matches!(
            ModeSense::parse6(&[1, 0, 0, 0]),
            Err(DataError::Invalid { .. })
        ));
        // Block descriptors longer than the mode data.
        assert!(matches!(
            ModeSense::parse6(&[3, 0, 0, 8]),
            Err(DataError::Invalid { .. })
        ));
        // Block descriptors cut off by the allocation length.
        assert!(matches!(
            ModeSense::parse6(&[0x0b, 0, 0, 8, 0, 0]),
            Err(DataError::Truncated { needed: 12, got: 6, .. })
        ));
        // Header only: no pages, no error.
        let m = ModeSense::parse6(&[3, 0, 0x10, 0]).unwrap();
        assert!(m.header.dpofua);
        assert_eq!(m.pages().count(), 0);
    }
}
