//! Bounds-checked big-endian reads. SCSI data is big-endian throughout (SPC-4 §3.5); every read
//! here returns None instead of panicking when the field lies past the end of the data.

pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

pub(crate) fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

pub(crate) fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

/// An ASCII identification field (vendor, product, serial): leading and trailing spaces and NULs
/// dropped, bytes outside printable ASCII shown as '?' so that they cannot upset a terminal or log.
pub(crate) fn ascii_field(b: &[u8]) -> String {
    let pad = |c: &u8| *c == b' ' || *c == 0;
    let start = b.iter().position(|c| !pad(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !pad(c)).map_or(start, |i| i + 1);
    b[start..end]
        .iter()
        .map(|&c| if (0x20..0x7f).contains(&c) { char::from(c) } else { '?' })
        .collect()
}

/// Test vectors are written as hex strings (whitespace ignored).
#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    assert!(digits.len() & 1 == 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex digit"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn reads_and_bounds() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(be16(&b, 7), Some(0x0809));
        assert_eq!(be16(&b, 8), None);
        assert_eq!(be32(&b, 5), Some(0x0607_0809));
        assert_eq!(be32(&b, 6), None);
        assert_eq!(be64(&b, 1), Some(0x0203_0405_0607_0809));
        assert_eq!(be64(&b, usize::MAX), None);
    }
    #[test]
    fn ascii_trimming() {
        assert_eq!(ascii_field(b"IET     "), "IET");
        assert_eq!(ascii_field(b"  beaf11\0\0"), "beaf11");
        assert_eq!(ascii_field(b"a\x01b\xffc "), "a?b?c");
        assert_eq!(ascii_field(b"   "), "");
        assert_eq!(ascii_field(b""), "");
    }
}
