//! REPORT LUNS parameter data (SPC-4 §6.33) and LUN numbers (SAM-5 §4.7).
//!
//! The session engine keeps LUNs as the raw 8-byte values the target reported and sends them
//! back unchanged; numbers are for people and for configuration. Only single-level LUNs in
//! peripheral (below 256) and flat (up to 16383) addressing have a number: the forms iSCSI
//! targets use.

use crate::bytes::{be32, be64};
use crate::error::DataError;

/// The smallest allocation length SPC allows for REPORT LUNS: room for the header and one LUN.
pub const REPORT_LUNS_MIN_ALLOC: u32 = 16;

/// The raw LUNs of a REPORT LUNS response, in the target's order. When the list is longer
/// than what arrived, returns [`DataError::Truncated`] with the allocation length to reissue
/// the command with.
pub fn parse_report_luns(b: &[u8]) -> Result<Vec<u64>, DataError> {
    const WHAT: &str = "REPORT LUNS data";
    if b.len() < 8 {
        return Err(DataError::Short {
            what: WHAT,
            needed: 8,
            got: b.len(),
        });
    }
    let list_len = be32(b, 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(DataError::Invalid {
            what: WHAT,
            reason: "LUN list length too large",
        })?;
    if list_len % 8 != 0 {
        return Err(DataError::Invalid {
            what: WHAT,
            reason: "LUN list length is not a multiple of 8",
        });
    }
    let needed = list_len.saturating_add(8);
    let list = b.get(8..needed).ok_or(DataError::Truncated {
        what: WHAT,
        needed,
        got: b.len(),
    })?;
    Ok(list.chunks_exact(8).filter_map(|c| be64(c, 0)).collect())
}

/// The number of a single-level LUN in peripheral or flat addressing (SAM-5 §4.7.7.2,
/// §4.7.7.3); None for other addressing methods, a bus identifier other than 0, or LUNs with
/// further levels, which are not one number (reading only the first level would give two
/// different logical units the same number).
pub fn decode_lun(raw: u64) -> Option<u16> {
    if raw & 0x0000_ffff_ffff_ffff != 0 {
        return None;
    }
    let first = u16::try_from(raw >> 48).ok()?;
    match first >> 14 {
        0b00 if first >> 8 == 0 => Some(first & 0xff),
        0b01 => Some(first & 0x3fff),
        _ => None,
    }
}

/// The 8-byte LUN for a number, as Linux and the targets here encode it: peripheral addressing
/// below 256, flat addressing up to 16383; None above.
pub fn encode_lun(lun: u16) -> Option<u64> {
    match lun {
        0..=255 => Some(u64::from(lun) << 48),
        256..=0x3fff => Some(u64::from(0x4000 | lun) << 48),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::unhex;

    #[test]
    fn tgtd_report_luns() {
        // tgtd with LUN 0 (controller) and LUN 1, as libiscsi's iscsi-ls read it (captured):
        // first with allocation length 16, then with the 24 bytes the header asked for.
        let short = unhex("00000010 00000000 0000000000000000");
        assert_eq!(
            parse_report_luns(&short),
            Err(DataError::Truncated {
                what: "REPORT LUNS data",
                needed: 24,
                got: 16
            })
        );
        let full = unhex("00000010 00000000 0000000000000000 0001000000000000");
        let luns = parse_report_luns(&full).unwrap();
        assert_eq!(luns, vec![0, 1 << 48]);
        assert_eq!(
            luns.iter().map(|&l| decode_lun(l)).collect::<Vec<_>>(),
            vec![Some(0), Some(1)]
        );
    }

    #[test]
    fn report_luns_edge_cases() {
        assert_eq!(parse_report_luns(&[0; 8]), Ok(vec![]));
        // Extra bytes after the list are ignored.
        assert_eq!(
            parse_report_luns(&unhex("00000008 00000000 4123000000000000 ffff")),
            Ok(vec![0x4123 << 48])
        );
        assert!(matches!(
            parse_report_luns(&[0, 0, 0, 0x0c, 0, 0, 0, 0]),
            Err(DataError::Invalid { .. })
        ));
        assert!(matches!(
            parse_report_luns(&[0, 0, 0, 8, 0, 0, 0]),
            Err(DataError::Short { needed: 8, .. })
        ));
        assert!(matches!(parse_report_luns(&[]), Err(DataError::Short { .. })));
        // A huge list length asks for a huge buffer; it does not wrap.
        assert!(matches!(
            parse_report_luns(&[0xff, 0xff, 0xff, 0xf8, 0, 0, 0, 0]),
            Err(DataError::Truncated {
                needed: 0x1_0000_0000,
                ..
            })
        ));
    }

    #[test]
    fn lun_numbers() {
        assert_eq!(encode_lun(1).map(u64::to_be_bytes), Some([0, 1, 0, 0, 0, 0, 0, 0]));
        assert_eq!(encode_lun(255).map(u64::to_be_bytes), Some([0, 0xff, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            encode_lun(256).map(u64::to_be_bytes),
            Some([0x41, 0x00, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(
            encode_lun(300).map(u64::to_be_bytes),
            Some([0x41, 0x2c, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(
            encode_lun(16383).map(u64::to_be_bytes),
            Some([0x7f, 0xff, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(encode_lun(16384), None);
        for n in [0u16, 1, 255, 256, 1000, 16383] {
            assert_eq!(encode_lun(n).and_then(decode_lun), Some(n));
        }
        // Flat addressing of a small number is valid too.
        assert_eq!(decode_lun(0x4005 << 48), Some(5));
        // Peripheral addressing with a bus identifier, extended/logical unit addressing
        // (e.g. the REPORT LUNS well-known LUN 0xc101), and second levels have no number.
        assert_eq!(decode_lun(0x0105 << 48), None);
        assert_eq!(decode_lun(0xc101 << 48), None);
        assert_eq!(decode_lun(0x8001 << 48), None);
        assert_eq!(decode_lun((1 << 48) | (2 << 32)), None);
    }
}
