//! Every parser against arbitrary input: no panics, and what parses is consistent. Inputs are
//! random bytes from a fixed-seed generator, with the header bytes each parser checks first
//! set to plausible values half of the time so that the deeper code is reached too.

use crate::capacity::Capacity;
use crate::error::ScsiError;
use crate::inquiry::{self, BlockDeviceCharacteristics, BlockLimits, LogicalBlockProvisioning, StandardInquiry};
use crate::mode::ModeSense;
use crate::report_luns::parse_report_luns;
use crate::sense::Sense;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap_or(0)
    }
    /// Small values are the interesting ones for length fields.
    fn small(&mut self) -> u8 {
        self.byte() % 48
    }
}

fn buffers(seed: u64, shape: impl Fn(&mut Rng, &mut Vec<u8>)) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = Rng(seed);
    (0..20_000).map(move |_| {
        let len = rng.below(160);
        let mut b: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        if rng.next() & 1 == 0 {
            shape(&mut rng, &mut b);
        }
        b
    })
}

fn set(b: &mut [u8], i: usize, v: u8) {
    if let Some(x) = b.get_mut(i) {
        *x = v;
    }
}

#[test]
fn sense_never_panics() {
    for b in buffers(1, |r, b| {
        let code = [0x70, 0x71, 0x72, 0x73][r.below(4)];
        set(b, 0, code);
        set(b, 7, r.small());
        for i in [8, 9, 20, 21] {
            if r.next() & 1 == 0 {
                set(b, i, if i % 2 == 0 { r.byte() % 6 } else { r.small() });
            }
        }
    }) {
        if let Ok(s) = Sense::parse(&b) {
            // Display and classification work on anything that parsed.
            assert!(!s.to_string().is_empty());
            let e = ScsiError::CheckCondition(s);
            let _ = (e.is_retryable(), e.errno());
        }
        let _ = ScsiError::check(0x02, &b);
    }
}

#[test]
fn vpd_pages_never_panic() {
    for page in [0x00u8, 0x80, 0x83, 0xb0, 0xb1, 0xb2] {
        for b in buffers(u64::from(page) + 2, |r, b| {
            set(b, 1, page);
            set(b, 2, 0);
            let len = u8::try_from(b.len().saturating_sub(4)).unwrap_or(u8::MAX);
            set(b, 3, if r.next() & 1 == 0 { len } else { r.small() });
            // Plausible designator headers for page 0x83.
            if page == 0x83 {
                set(b, 7, r.small());
            }
        }) {
            match page {
                0x00 => drop(inquiry::parse_supported_pages(&b)),
                0x80 => drop(inquiry::parse_unit_serial(&b)),
                0x83 => {
                    if let Ok(ds) = inquiry::parse_device_identification(&b) {
                        let total: usize = ds.iter().map(|d| d.id.len() + 4).sum();
                        assert!(total + 4 <= b.len());
                        if let Some(w) = inquiry::best_wwid(&ds) {
                            assert!(!w.as_str().is_empty());
                        }
                    }
                }
                0xb0 => drop(BlockLimits::parse(&b)),
                0xb1 => drop(BlockDeviceCharacteristics::parse(&b)),
                _ => drop(LogicalBlockProvisioning::parse(&b)),
            }
        }
    }
    for b in buffers(9, |_, _| {}) {
        let _ = StandardInquiry::parse(&b);
    }
}

#[test]
fn capacity_and_luns_never_panic() {
    for b in buffers(10, |_, _| {}) {
        if let Ok(c) = Capacity::parse10(&b) {
            assert_eq!(u128::from(c.bytes()), u128::from(c.blocks) * u128::from(c.block_size));
        }
        if let Ok(c) = Capacity::parse16(&b) {
            assert_eq!(u128::from(c.bytes()), u128::from(c.blocks) * u128::from(c.block_size));
            assert!(c.block_size > 0);
        }
    }
    for b in buffers(11, |r, b| {
        let n = r.small() & 0x38;
        for (i, v) in [0, 0, 0, n].into_iter().enumerate() {
            set(b, i, v);
        }
    }) {
        if let Ok(luns) = parse_report_luns(&b) {
            assert!(8 + luns.len() * 8 <= b.len());
        }
    }
}

#[test]
fn mode_sense_never_panics() {
    for b in buffers(12, |r, b| {
        let len = u8::try_from(b.len().saturating_sub(1)).unwrap_or(u8::MAX);
        set(b, 0, len);
        set(b, 3, r.small() & 0x18);
    }) {
        if let Ok(m) = ModeSense::parse6(&b) {
            let bytes: usize = m.pages().map(|p| p.data.len() + 2).sum();
            assert!(bytes <= b.len());
            let _ = m.caching();
        }
        if let Ok(m) = ModeSense::parse10(&b) {
            let _ = (m.pages().count(), m.caching());
        }
    }
}
