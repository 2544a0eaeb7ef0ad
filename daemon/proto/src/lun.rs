//! LUN encoding in the 8-byte LUN field (SAM-5 §4.7): peripheral addressing below 256, flat
//! space addressing up to 16383, as every target here uses.

/// Encodes a LUN number for the wire.
pub fn encode(lun: u16) -> u64 {
    let lun = u64::from(lun & 0x3fff);
    if lun < 256 {
        lun << 48
    } else {
        (0x4000 | lun) << 48
    }
}

/// Decodes the first level of a LUN as a number; None for formats we do not address.
pub fn decode(raw: u64) -> Option<u16> {
    let first = u16::try_from(raw >> 48).ok()?;
    match first >> 14 {
        0 if first >> 8 == 0 => Some(first & 0xff),
        1 => Some(first & 0x3fff),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn peripheral_and_flat() {
        assert_eq!(encode(1).to_be_bytes(), [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(300).to_be_bytes(), [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        for n in [0u16, 1, 255, 256, 16383] {
            assert_eq!(decode(encode(n)), Some(n));
        }
        assert_eq!(decode(0xc000 << 48), None);
    }
}
