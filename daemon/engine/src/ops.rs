//! SCSI operations on a session, typed: what the daemon, the device layer and the benchmark
//! use instead of raw CDBs. Every helper checks the SCSI status and turns CHECK CONDITION into a
//! [`ScsiError`] carrying the decoded sense.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lunlink_proto::lun;
use lunlink_scsi::{cdb, Capacity, Cdb, DataError, Disposition, ScsiError};

use crate::error::CommandError;
use crate::buf::{DataBuf, IoBuf};
use crate::session::Session;

/// Why a SCSI operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ScsiOpError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Scsi(#[from] ScsiError),
    #[error("unusable response: {0}")]
    Data(#[from] DataError),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("the target moved {missing} bytes fewer than asked and reported success")]
    ShortTransfer { missing: u32 },
}

impl ScsiOpError {
    /// Whether retrying the same command may succeed (unit attention, busy, ...).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ScsiOpError::Scsi(e) if e.is_retryable())
    }
}

/// Immediate retries of one command at most (unit attentions: each is reported once, and
/// tgtd reports POWER ON/RESET on every new nexus; aborted commands).
const RETRIES_NOW: u32 = 5;
/// First pause before a command answered BUSY (or becoming ready) goes again; it doubles up to
/// [`RETRY_PAUSE_MAX`], for as long as the command timeout allows.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Retry budget when the session has no command timeout.
const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// The retries of one command, as Linux's SCSI midlayer does them: by the disposition table
/// of [`ScsiError::disposition`].
struct Retries {
    started: Option<tokio::time::Instant>,
    now_left: u32,
    pause: Duration,
}

impl Retries {
    fn new() -> Self {
        Self { started: None, now_left: RETRIES_NOW, pause: RETRY_PAUSE }
    }

    /// Whether to send the command again after `e`, having waited the pause it needs.
    async fn again(&mut self, session: &Session, e: &ScsiOpError) -> bool {
        let ScsiOpError::Scsi(se) = e else { return false };
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        match se.disposition() {
            Disposition::RetryNow => {
                if self.now_left == 0 {
                    return false;
                }
                self.now_left -= 1;
            }
            d @ (Disposition::RetryLater | Disposition::QueueFull) => {
                let budget = session.command_timeout().unwrap_or(RETRY_BUDGET);
                if started.elapsed() + self.pause > budget {
                    return false;
                }
                if d == Disposition::QueueFull {
                    session.throttle();
                }
                tokio::time::sleep(self.pause).await;
                self.pause = (self.pause * 2).min(RETRY_PAUSE_MAX);
            }
            Disposition::PathError | Disposition::TargetError => return false,
        }
        session.stats().retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// What the daemon learns about a logical unit when it appears.
#[derive(Debug, Clone, Default)]
pub struct LunInfo {
    pub lun: u16,
    /// SPC peripheral device type: 0 = direct access block device (a disk).
    pub peripheral_type: u8,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    pub serial: String,
    /// Identity of the logical unit from VPD 0x83 (e.g. "naa.6001405..."), empty if none.
    pub wwid: String,
    pub capacity: Option<Capacity>,
    pub read_only: bool,
    pub write_cache: bool,
    pub fua: bool,
    pub rotational: Option<bool>,
    pub removable: bool,
    /// Block limits VPD (0xB0) when the LU has it.
    pub block_limits: Option<lunlink_scsi::BlockLimits>,
    /// Logical block provisioning VPD (0xB2) when the LU has it.
    pub provisioning: Option<lunlink_scsi::LogicalBlockProvisioning>,
    /// TPGS of the standard INQUIRY data: 0 no ALUA, 1 implicit, 2 explicit, 3 both.
    pub tpgs: u8,
    /// The target port group of the port this session reaches the LU through (VPD 0x83).
    pub target_port_group: Option<u16>,
    /// The relative identifier of that target port (VPD 0x83).
    pub relative_target_port: Option<u16>,
}

impl Session {
    /// One attempt: the buffer (if any) comes back whatever happened.
    async fn run_once<B: IoBuf>(&self, lun_no: u16, c: &Cdb, data: DataBuf<B>) -> (Option<B>, Result<(), ScsiOpError>) {
        // READ and WRITE move exactly what they ask for; other commands (UNMAP's parameter
        // list, for one) may legitimately leave a residual.
        let full = !matches!(data, DataBuf::None) && matches!(c.opcode(), 0x28 | 0x88 | 0x2a | 0x8a);
        let (buf, r) = self.execute(lun::encode(lun_no), c.as_slice(), data).await;
        let r = r.map_err(ScsiOpError::from).and_then(|done| {
            ScsiError::check(done.status, done.sense())?;
            // Block reads and writes move exactly what they ask for; anything less is a fault.
            if full && done.residual_under != 0 {
                return Err(ScsiOpError::ShortTransfer { missing: done.residual_under });
            }
            Ok(())
        });
        (buf, r)
    }

    /// Runs a command, retrying what [`ScsiError::disposition`] says may succeed (unit
    /// attention, BUSY, TASK SET FULL, becoming ready, ...) as the SCSI midlayer does for
    /// disks. The buffer is reused as it is: a retried write sends the same data, a retried
    /// read overwrites what came before. A failure counts in the session's `errors`.
    pub async fn run<B: IoBuf>(&self, lun_no: u16, c: &Cdb, data: DataBuf<B>) -> (Option<B>, Result<(), ScsiOpError>) {
        let write = matches!(data, DataBuf::Out(_));
        let mut buf = data.into_inner();
        let mut retries = Retries::new();
        loop {
            let d = match buf.take() {
                None => DataBuf::None,
                Some(b) if write => DataBuf::Out(b),
                Some(b) => DataBuf::In(b),
            };
            let (b, r) = self.run_once(lun_no, c, d).await;
            buf = b;
            match r {
                Err(e) if retries.again(self, &e).await => {}
                Err(e) => {
                    self.stats().errors.fetch_add(1, Ordering::Relaxed);
                    return (buf, Err(e));
                }
                ok => return (buf, ok),
            }
        }
    }

    /// Runs a data-in management command into a fresh buffer, returning what came back.
    async fn run_in(&self, lun_no: u16, c: &Cdb, alloc: usize) -> Result<Vec<u8>, ScsiOpError> {
        let (buf, r) = self.execute(lun::encode(lun_no), c.as_slice(), DataBuf::In(vec![0u8; alloc])).await;
        let done = r?;
        ScsiError::check(done.status, done.sense())?;
        let mut buf = buf.unwrap_or_default();
        buf.truncate(alloc.saturating_sub(done.residual_under as usize));
        Ok(buf)
    }

    pub async fn test_unit_ready(&self, lun_no: u16) -> Result<(), ScsiOpError> {
        let mut retries = Retries::new();
        loop {
            match self.run_once::<Vec<u8>>(lun_no, &cdb::test_unit_ready(), DataBuf::None).await.1 {
                Err(e) if retries.again(self, &e).await => {}
                other => return other,
            }
        }
    }

    /// REPORT LUNS (SPC-4 §6.33) on LUN 0, as LUN numbers.
    pub async fn report_luns(&self) -> Result<Vec<u16>, ScsiOpError> {
        let mut alloc = 4096usize;
        loop {
            let c = cdb::report_luns(u32::try_from(alloc).unwrap_or(u32::MAX));
            let buf = self.read_data(0, c, alloc).await?;
            match lunlink_scsi::parse_report_luns(&buf) {
                Ok(raw) => return Ok(raw.into_iter().filter_map(lunlink_scsi::decode_lun).collect()),
                Err(DataError::Truncated { needed, .. }) if alloc < needed && needed <= 1 << 20 => alloc = needed,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs a data-in management command, retrying transient conditions.
    async fn read_data(&self, lun_no: u16, c: Cdb, alloc: usize) -> Result<Vec<u8>, ScsiOpError> {
        let mut retries = Retries::new();
        loop {
            match self.run_in(lun_no, &c, alloc).await {
                Err(e) if retries.again(self, &e).await => {}
                other => return other,
            }
        }
    }

    /// A VPD page (SPC-4 §7.8), whole.
    pub async fn inquiry_vpd(&self, lun_no: u16, page: u8) -> Result<Vec<u8>, ScsiOpError> {
        self.read_data(lun_no, cdb::inquiry_vpd(page, 4096), 4096).await
    }

    /// REPORT TARGET PORT GROUPS (SPC-4 §6.27): the ALUA states of the LU's target port groups.
    pub async fn report_target_port_groups(&self, lun_no: u16) -> Result<lunlink_scsi::TargetPortGroups, ScsiOpError> {
        let mut alloc = lunlink_scsi::alua::RTPG_ALLOC as usize;
        // Asked again at most twice: a target whose answer keeps growing gets no third try.
        for _ in 0..3 {
            let c = cdb::report_target_port_groups(u32::try_from(alloc).unwrap_or(u32::MAX));
            let buf = self.read_data(lun_no, c, alloc).await?;
            match lunlink_scsi::alua::parse_target_port_groups(&buf) {
                // 8 more: LIO leaves its extended header out of the length it reports.
                Err(DataError::Truncated { needed, .. }) if alloc < needed && needed <= 1 << 20 => alloc = needed + 8,
                r => return Ok(r?),
            }
        }
        Err(ScsiOpError::Invalid("REPORT TARGET PORT GROUPS data kept growing past the allocation length"))
    }

    /// READ CAPACITY(16), falling back to (10) for devices without it.
    pub async fn read_capacity(&self, lun_no: u16) -> Result<Capacity, ScsiOpError> {
        match self.read_data(lun_no, cdb::read_capacity16(32), 32).await {
            Ok(b) => Ok(Capacity::parse16(&b)?),
            Err(ScsiOpError::Scsi(ScsiError::CheckCondition(s))) if s.key == lunlink_scsi::SenseKey::IllegalRequest => {
                let b = self.read_data(lun_no, cdb::read_capacity10(), 8).await?;
                Ok(Capacity::parse10(&b)?)
            }
            Err(e) => Err(e),
        }
    }

    /// Everything the daemon shows about a LU and the device layer needs to set it up.
    pub async fn probe_lun(&self, lun_no: u16) -> Result<LunInfo, ScsiOpError> {
        let std_inq = self.read_data(lun_no, cdb::inquiry(255), 255).await?;
        let inq = lunlink_scsi::StandardInquiry::parse(&std_inq)?;
        let mut info = LunInfo {
            lun: lun_no,
            peripheral_type: inq.device_type.code(),
            vendor: inq.vendor.clone(),
            product: inq.product.clone(),
            revision: inq.revision.clone(),
            removable: inq.removable,
            tpgs: inq.tpgs,
            ..LunInfo::default()
        };
        let pages = match self.inquiry_vpd(lun_no, 0x00).await {
            Ok(b) => lunlink_scsi::inquiry::parse_supported_pages(&b).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if pages.contains(&0x80) {
            if let Ok(b) = self.inquiry_vpd(lun_no, 0x80).await {
                info.serial = lunlink_scsi::inquiry::parse_unit_serial(&b).unwrap_or_default();
            }
        }
        if pages.contains(&0x83) {
            if let Ok(b) = self.inquiry_vpd(lun_no, 0x83).await {
                if let Ok(ids) = lunlink_scsi::inquiry::parse_device_identification(&b) {
                    info.wwid = lunlink_scsi::inquiry::best_wwid(&ids).map(|w| w.to_string()).unwrap_or_default();
                    (info.target_port_group, info.relative_target_port) = lunlink_scsi::alua::target_port(&ids);
                }
            }
        }
        if info.peripheral_type != 0 {
            return Ok(info);
        }
        if pages.contains(&0xb0) {
            if let Ok(b) = self.inquiry_vpd(lun_no, 0xb0).await {
                info.block_limits = lunlink_scsi::BlockLimits::parse(&b).ok();
            }
        }
        if pages.contains(&0xb1) {
            if let Ok(b) = self.inquiry_vpd(lun_no, 0xb1).await {
                info.rotational = lunlink_scsi::BlockDeviceCharacteristics::parse(&b).ok().map(|c| c.is_rotational());
            }
        }
        if pages.contains(&0xb2) {
            if let Ok(b) = self.inquiry_vpd(lun_no, 0xb2).await {
                info.provisioning = lunlink_scsi::LogicalBlockProvisioning::parse(&b).ok();
            }
        }
        info.capacity = Some(self.read_capacity(lun_no).await?);
        // MODE SENSE(6) of the caching page: write protect and volatile write cache.
        if let Ok(b) = self.read_data(lun_no, cdb::mode_sense6(0x08, 0, true, 255), 255).await {
            if let Ok(m) = lunlink_scsi::ModeSense::parse6(&b) {
                info.read_only = m.header.write_protected;
                info.fua = m.header.dpofua;
                info.write_cache = m.caching().is_some_and(|c| c.wce);
            }
        }
        Ok(info)
    }

    fn blocks(len: usize, block_size: u32) -> Result<u32, ScsiOpError> {
        let bs = block_size as usize;
        if bs == 0 || !len.is_multiple_of(bs) {
            return Err(ScsiOpError::Invalid("buffer length is not a multiple of the block size"));
        }
        u32::try_from(len / bs).map_err(|_| ScsiOpError::Invalid("too many blocks for one command"))
    }

    /// Reads `buf.len()` bytes from `lba` (READ(10) or READ(16) as the range needs), and
    /// hands the buffer back.
    pub async fn read<B: IoBuf>(&self, lun_no: u16, lba: u64, block_size: u32, buf: B) -> (B, Result<(), ScsiOpError>) {
        let blocks = match Self::blocks(buf.len(), block_size) {
            Ok(b) => b,
            Err(e) => return (buf, Err(e)),
        };
        let (b, r) = self.run(lun_no, &cdb::read(lba, blocks), DataBuf::In(buf)).await;
        (b.expect("run hands the buffer back"), r)
    }

    /// Writes `buf` at `lba`, with Force Unit Access when `fua`, and hands the buffer back.
    pub async fn write<B: IoBuf>(&self, lun_no: u16, lba: u64, block_size: u32, buf: B, fua: bool) -> (B, Result<(), ScsiOpError>) {
        let blocks = match Self::blocks(buf.len(), block_size) {
            Ok(b) => b,
            Err(e) => return (buf, Err(e)),
        };
        let (b, r) = self.run(lun_no, &cdb::write(lba, blocks, fua), DataBuf::Out(buf)).await;
        (b.expect("run hands the buffer back"), r)
    }

    /// Reads into a new buffer (convenience for tools and tests; the data path lends its own).
    pub async fn read_vec(&self, lun_no: u16, lba: u64, block_size: u32, len: usize) -> Result<Vec<u8>, ScsiOpError> {
        let (buf, r) = self.read(lun_no, lba, block_size, vec![0u8; len]).await;
        r.map(|()| buf)
    }

    /// Reads into `out` through a buffer of its own (convenience for tools and tests: one
    /// extra copy; the data path lends its buffer with [`Session::read`]).
    pub async fn read_into(&self, lun_no: u16, lba: u64, block_size: u32, out: &mut [u8]) -> Result<(), ScsiOpError> {
        let buf = self.read_vec(lun_no, lba, block_size, out.len()).await?;
        out.copy_from_slice(&buf);
        Ok(())
    }

    /// Writes a copy of `data` (convenience for tools and tests).
    pub async fn write_slice(&self, lun_no: u16, lba: u64, block_size: u32, data: &[u8], fua: bool) -> Result<(), ScsiOpError> {
        self.write(lun_no, lba, block_size, data.to_vec(), fua).await.1
    }

    /// SYNCHRONIZE CACHE(10) over the whole LU.
    pub async fn flush(&self, lun_no: u16) -> Result<(), ScsiOpError> {
        self.run::<Vec<u8>>(lun_no, &cdb::synchronize_cache10(0, 0), DataBuf::None).await.1
    }

    /// UNMAP (SBC-3 §5.28) of up to a handful of ranges.
    pub async fn unmap(&self, lun_no: u16, ranges: &[(u64, u32)]) -> Result<(), ScsiOpError> {
        let mut params = vec![0u8; 8 + 16 * ranges.len().max(1)];
        let len = cdb::write_unmap_params(&mut params, ranges)?;
        params.truncate(usize::from(len));
        self.run(lun_no, &cdb::unmap(len), DataBuf::Out(params)).await.1
    }

    /// WRITE SAME(16) of `block` over `blocks` blocks from `lba`, with UNMAP when `unmap`
    /// (SBC-3 §5.50); hands the block back.
    pub async fn write_same<B: IoBuf>(&self, lun_no: u16, lba: u64, blocks: u32, unmap: bool, block: B) -> (B, Result<(), ScsiOpError>) {
        let (b, r) = self.run(lun_no, &cdb::write_same16(lba, blocks, unmap, false), DataBuf::Out(block)).await;
        (b.expect("run hands the buffer back"), r)
    }

    /// WRITE SAME(16) of zeroes, with UNMAP when `unmap` (SBC-3 §5.50).
    pub async fn write_zeroes(&self, lun_no: u16, lba: u64, blocks: u32, block_size: u32, unmap: bool) -> Result<(), ScsiOpError> {
        self.write_same(lun_no, lba, blocks, unmap, vec![0u8; block_size as usize]).await.1
    }
}
