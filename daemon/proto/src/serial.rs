//! Serial number arithmetic for CmdSN, StatSN and friends (RFC 1982, as RFC 7143 §4.2.2.1 asks).

/// `a < b` in 32-bit serial arithmetic.
pub fn lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// `a <= b` in 32-bit serial arithmetic.
pub fn le(a: u32, b: u32) -> bool {
    a == b || lt(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn wraps() {
        assert!(lt(1, 2));
        assert!(lt(u32::MAX, 0));
        assert!(!lt(0, u32::MAX));
        assert!(le(5, 5));
        assert!(!lt(5, 5));
    }
}
