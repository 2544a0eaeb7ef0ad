//! The device geometry of a logical unit (block sizes, transfer limits, discard and write
//! zeroes as the LU offers them), chosen from what `probe_lun` found, as Linux's sd does.

use super::*;

/// How discards reach the LU (SBC-3 §4.7.3, chosen as Linux's sd does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Discard {
    None,
    Unmap,
    WriteSameUnmap,
}

/// The device parameters of a LU, from what `probe_lun` found and the session's limits.
/// Kept in the device's JSON, so a restarted daemon serves the device as it was made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Geometry {
    pub(super) block_size: u32,
    pub(super) block_shift: u8,
    pub(super) physical_shift: u8,
    pub(super) blocks: u64,
    /// The ublk IO buffer per tag = the largest request the kernel sends.
    pub(super) io_buf_bytes: u32,
    /// The largest transfer of one SCSI command (Block Limits); larger requests are split.
    pub(super) max_xfer_bytes: usize,
    pub(super) read_only: bool,
    pub(super) write_cache: bool,
    pub(super) fua: bool,
    pub(super) rotational: bool,
    pub(super) discard: Discard,
    pub(super) discard_granularity: u32,
    pub(super) discard_alignment: u32,
    pub(super) max_discard_blocks: u32,
    /// 0: WRITE ZEROES is not offered.
    pub(super) write_zeroes_blocks: u32,
    /// WRITE SAME may deallocate when zeroing (the LU reads unmapped blocks as zeros).
    pub(super) write_zeroes_unmap: bool,
}

pub(super) fn log2_exact(v: u64) -> Option<u8> {
    (v.is_power_of_two()).then(|| u8::try_from(v.trailing_zeros()).unwrap_or(u8::MAX))
}

impl Geometry {
    pub(super) fn new(info: &LunInfo, max_burst: u32) -> Result<Geometry, DeviceError> {
        let cap = info
            .capacity
            .ok_or_else(|| DeviceError::Unsupported("the logical unit reported no capacity".into()))?;
        let bs = cap.block_size;
        let block_shift = match log2_exact(u64::from(bs)) {
            Some(s) if (512..=MAX_BLOCK_SIZE).contains(&bs) => s,
            _ => {
                return Err(DeviceError::Unsupported(format!(
                    "logical block size {bs} is not supported by ublk (512 to {MAX_BLOCK_SIZE}, a power of two)"
                )))
            }
        };
        if cap.blocks == 0 {
            return Err(DeviceError::Unsupported("the logical unit has no blocks".into()));
        }
        let physical_shift = block_shift.saturating_add(cap.phys_block_exp.min(8));
        let bs64 = u64::from(bs);
        let limits = info.block_limits.as_ref();
        let lu_max = limits.map_or(0, |l| u64::from(l.max_xfer_len) * bs64);
        let max_xfer_bytes = if lu_max == 0 { usize::MAX } else { usize::try_from(lu_max).unwrap_or(usize::MAX) };
        // The IO buffer: a whole number of pages, at most the burst length and the LU's limit
        // (when those allow a page at all: smaller LU limits are met by splitting).
        let page = u64::from(MAX_BLOCK_SIZE);
        let mut io = MAX_IO_BYTES.min(u64::from(max_burst.max(1)));
        if lu_max > 0 {
            io = io.min(lu_max);
        }
        let io = (io / page * page).max(page);
        let io_buf_bytes = u32::try_from(io).unwrap_or(1 << 20);

        let lbp = info.provisioning.as_ref();
        let max_unmap = limits.map_or(0, |l| u64::from(l.max_unmap_lba_count));
        let thin = cap.lbpme;
        let discard = if thin && lbp.is_none_or(|p| p.lbpu) && max_unmap > 0 {
            Discard::Unmap
        } else if thin && lbp.is_some_and(|p| p.lbpws) {
            Discard::WriteSameUnmap
        } else {
            Discard::None
        };
        let ws_max = limits.map_or(0, |l| l.max_write_same_len);
        let range_cap = |lim: u64| -> u32 {
            let lim = if lim == 0 || lim == u64::from(u32::MAX) { MAX_RANGE_BLOCKS } else { lim.min(MAX_RANGE_BLOCKS) };
            // Also bounded by what a 32-bit sector count holds.
            let by_sectors = u64::from(u32::MAX) / (bs64 / 512);
            u32::try_from(lim.min(by_sectors)).unwrap_or(0)
        };
        let max_discard_blocks = match discard {
            Discard::None => 0,
            Discard::Unmap => range_cap(max_unmap),
            Discard::WriteSameUnmap => range_cap(ws_max),
        };
        let granularity_blocks = limits.map_or(0, |l| u64::from(l.opt_unmap_granularity));
        let physical = 1u64 << physical_shift;
        let discard_granularity = u32::try_from((granularity_blocks * bs64).max(physical)).unwrap_or(u32::MAX);
        let discard_alignment = limits
            .and_then(|l| l.unmap_granularity_alignment)
            .map_or(0, |a| u32::try_from(u64::from(a) * bs64 % u64::from(discard_granularity)).unwrap_or(0));
        // WRITE SAME(16) of zeroes, when the LU says it has WRITE SAME.
        let write_zeroes_blocks = if ws_max > 0 || lbp.is_some_and(|p| p.lbpws) { range_cap(ws_max) } else { 0 };
        let write_zeroes_unmap = lbp.is_some_and(|p| p.lbpws) && (cap.lbprz || lbp.is_some_and(|p| p.lbprz));
        Ok(Geometry {
            block_size: bs,
            block_shift,
            physical_shift,
            blocks: cap.blocks,
            io_buf_bytes,
            max_xfer_bytes,
            read_only: info.read_only,
            write_cache: info.write_cache,
            fua: info.write_cache && info.fua,
            rotational: info.rotational == Some(true),
            discard,
            discard_granularity,
            discard_alignment,
            max_discard_blocks,
            write_zeroes_blocks,
            write_zeroes_unmap,
        })
    }

    /// The ublk parameters for this geometry.
    pub(super) fn params(&self) -> sys::ublk_params {
        let sectors_per_block = self.block_size / 512;
        let mut attrs = 0;
        if self.read_only {
            attrs |= sys::UBLK_ATTR_READ_ONLY;
        }
        if self.rotational {
            attrs |= sys::UBLK_ATTR_ROTATIONAL;
        }
        if self.write_cache {
            attrs |= sys::UBLK_ATTR_VOLATILE_CACHE;
        }
        if self.fua {
            attrs |= sys::UBLK_ATTR_FUA;
        }
        let mut p = sys::ublk_params {
            types: sys::UBLK_PARAM_TYPE_BASIC,
            basic: sys::ublk_param_basic {
                attrs,
                logical_bs_shift: self.block_shift,
                physical_bs_shift: self.physical_shift,
                io_min_shift: self.physical_shift,
                io_opt_shift: self.physical_shift,
                max_sectors: self.io_buf_bytes >> 9,
                dev_sectors: self.blocks * u64::from(sectors_per_block),
                ..Default::default()
            },
            ..Default::default()
        };
        if self.discard != Discard::None || self.write_zeroes_blocks > 0 {
            p.types |= sys::UBLK_PARAM_TYPE_DISCARD;
            p.discard = sys::ublk_param_discard {
                discard_alignment: self.discard_alignment,
                discard_granularity: self.discard_granularity,
                max_discard_sectors: self.max_discard_blocks.saturating_mul(sectors_per_block),
                max_write_zeroes_sectors: self.write_zeroes_blocks.saturating_mul(sectors_per_block),
                max_discard_segments: 1,
                ..Default::default()
            };
        }
        p
    }
}
