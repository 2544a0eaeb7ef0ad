//! The data pattern of `--verify`: every logical block written carries its own LBA, the
//! generation of the write (how many writes this worker had made) and the run's seed, followed by
//! a fill derived from all three. A read-back that finds another LBA, an older generation, a
//! previous run's data or zeroes is a mismatch, and the check says which.

/// Words of a block: 0 = LBA, 1 = generation << 32 | low 32 bits of the seed, then the fill.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: every input bit affects every output bit.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn tag(gen: u32, seed: u64) -> u64 {
    (u64::from(gen) << 32) | (seed & 0xffff_ffff)
}

fn fill_start(lba: u64, gen: u32, seed: u64) -> u64 {
    mix(lba ^ mix(seed ^ (u64::from(gen) << 17)))
}

/// Writes the pattern of blocks `first_lba..` into `buf` (whole blocks of `block_size` bytes,
/// a multiple of 8).
pub fn fill(buf: &mut [u8], first_lba: u64, block_size: usize, gen: u32, seed: u64) {
    for (n, block) in buf.chunks_exact_mut(block_size).enumerate() {
        let lba = first_lba + n as u64;
        let mut words = block.chunks_exact_mut(8);
        if let Some(w) = words.next() {
            w.copy_from_slice(&lba.to_le_bytes());
        }
        if let Some(w) = words.next() {
            w.copy_from_slice(&tag(gen, seed).to_le_bytes());
        }
        let mut x = fill_start(lba, gen, seed);
        for w in words {
            w.copy_from_slice(&x.to_le_bytes());
            x = x.wrapping_add(GOLDEN);
        }
    }
}

/// What a read-back found in a block that does not carry the expected pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub lba: u64,
    pub found: Found,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// All zeroes: the write never reached the medium (or the LU stores nothing).
    Zeroes,
    /// The header of another block.
    OtherLba(u64),
    /// This block's header from another generation of this run (a lost or reordered write).
    OtherGeneration(u32),
    /// This block's LBA with another seed: data from an earlier run.
    OtherRun,
    /// The right header, corrupted fill at this byte offset within the block.
    BadFill(usize),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.found {
            Found::Zeroes => write!(f, "LBA {}: found zeroes instead of the data written", self.lba),
            Found::OtherLba(l) => {
                write!(f, "LBA {}: found data that is not this block's (its header names LBA {l}: a misplaced write or foreign data)", self.lba)
            }
            Found::OtherGeneration(g) => {
                write!(
                    f,
                    "LBA {}: found the data of write generation {g} instead of the last one (lost write)",
                    self.lba
                )
            }
            Found::OtherRun => write!(f, "LBA {}: found data from another run (write lost)", self.lba),
            Found::BadFill(at) => {
                write!(f, "LBA {}: header right but data corrupted at byte {at} of the block", self.lba)
            }
        }
    }
}

/// Checks that `buf` holds the pattern of blocks `first_lba..` written with `gen` and `seed`.
/// Returns the first block that does not.
pub fn check(buf: &[u8], first_lba: u64, block_size: usize, gen: u32, seed: u64) -> Result<(), Mismatch> {
    for (n, block) in buf.chunks_exact(block_size).enumerate() {
        let lba = first_lba + n as u64;
        let word = |i: usize| -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&block[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let bad = |found| Err(Mismatch { lba, found });
        let (got_lba, got_tag) = (word(0), word(1));
        if got_lba != lba || got_tag != tag(gen, seed) {
            if block.iter().all(|&b| b == 0) {
                return bad(Found::Zeroes);
            }
            if got_lba != lba {
                return bad(Found::OtherLba(got_lba));
            }
            if got_tag & 0xffff_ffff == seed & 0xffff_ffff {
                return bad(Found::OtherGeneration((got_tag >> 32) as u32));
            }
            return bad(Found::OtherRun);
        }
        let mut x = fill_start(lba, gen, seed);
        for i in 2..block_size / 8 {
            if word(i) != x {
                return bad(Found::BadFill(i * 8));
            }
            x = x.wrapping_add(GOLDEN);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: usize = 512;

    #[test]
    fn a_block_checks_against_its_own_pattern() {
        let mut b = vec![0u8; 8 * BS];
        fill(&mut b, 1000, BS, 7, 0xdead_beef_1234);
        assert_eq!(check(&b, 1000, BS, 7, 0xdead_beef_1234), Ok(()));
    }

    #[test]
    fn every_kind_of_mismatch_is_found_and_named() {
        let seed = 42;
        let mut b = vec![0u8; 4 * BS];
        // Zeroes.
        assert_eq!(check(&b, 10, BS, 1, seed).unwrap_err().found, Found::Zeroes);
        // Misplaced: data of LBA 20 read at LBA 10.
        fill(&mut b, 20, BS, 1, seed);
        assert_eq!(check(&b, 10, BS, 1, seed).unwrap_err(), Mismatch { lba: 10, found: Found::OtherLba(20) });
        // Lost write: generation 1 on the medium, 2 expected.
        fill(&mut b, 10, BS, 1, seed);
        assert_eq!(check(&b, 10, BS, 2, seed).unwrap_err().found, Found::OtherGeneration(1));
        // Another run's data.
        fill(&mut b, 10, BS, 2, seed + 1);
        assert_eq!(check(&b, 10, BS, 2, seed).unwrap_err().found, Found::OtherRun);
        // One flipped bit in the third block's fill.
        fill(&mut b, 10, BS, 2, seed);
        b[2 * BS + 300] ^= 0x10;
        assert_eq!(check(&b, 10, BS, 2, seed).unwrap_err(), Mismatch { lba: 12, found: Found::BadFill(296) });
    }

    #[test]
    fn fills_differ_between_blocks_generations_and_seeds() {
        let mut a = vec![0u8; BS];
        let mut b = vec![0u8; BS];
        fill(&mut a, 5, BS, 1, 9);
        fill(&mut b, 5, BS, 2, 9);
        assert_ne!(a[16..], b[16..]);
        fill(&mut b, 6, BS, 1, 9);
        assert_ne!(a[16..], b[16..]);
        fill(&mut b, 5, BS, 1, 10);
        assert_ne!(a[16..], b[16..]);
    }
}
