//! Block devices for logical units, through the kernel's ublk driver (`/dev/ublkbN`).
//!
//! Every libublk call of the daemon lives in this module; the rest of the daemon hands it
//! engine types ([`Session`], [`LunInfo`]) and gets plain data back (device paths, errors).
//!
//! A device belongs to a logical unit, identified by its WWID (VPD 0x83), and serves IO over a
//! list of paths (a session and a LUN number). Each command takes the first path whose session
//! is logged in; a second session to the same LU (another portal) adds a standby path that
//! takes over while the first reconnects or after it is logged out, so that multipath
//! (policies, path checkers) can grow here without a new design.
//!
//! Threads: per device one control thread that creates the device and waits in libublk's
//! `run_target` until it is removed; per queue one libublk thread with a smol executor and one
//! async task per tag (prep, then loop: descriptor -> SCSI command -> commit bytes or -errno).
//! Queue threads enter the tokio runtime, so the engine's timers work there. The engine
//! completes commands on tokio's threads while a queue thread sleeps in io_uring: every engine
//! future is polled with a waker that also writes the queue's eventfd, on which an io_uring
//! poll is always pending, so the queue thread wakes up at once (without it, IO would stall
//! until the next ublk completion or the 20 s idle timeout).

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::helpers::IoBuf;
use libublk::io::{UblkDev, UblkQueue};
use libublk::{sys, BufDesc, UblkError, UblkFlags, UblkUringData};
use lunlink_engine::{LunInfo, RawIoBuf, ScsiOpError, Session};
use lunlink_multipath::{LogicalUnit, Path as IoPath, Policy, Registry, Timers, Tried};

/// The ublk control device; it exists once `ublk_drv` is loaded.
const CONTROL: &str = "/dev/ublk-control";
/// Target type recorded by libublk in /run/ublksrvd/<id>.json.
const TARGET_TYPE: &str = "lunlink";
/// Largest IO the kernel sends us, before the LU's and the session's own limits.
const MAX_IO_BYTES: u64 = 1 << 20;
/// ublk takes logical blocks of 512 bytes up to the page size.
const MAX_BLOCK_SIZE: u32 = 4096;
/// Largest UNMAP / WRITE SAME range in blocks when the LU sets no limit (as Linux's sd).
const MAX_RANGE_BLOCKS: u64 = 0x7f_ffff;

/// Why a LUN has no block device, or why a device cannot go away yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("block devices are disabled in the configuration ([devices] enabled = false)")]
    Disabled,
    /// No /dev/ublk-control; the message says why and what to do (see ublk_check.rs).
    #[error("{}", crate::ublk_check::diagnosis())]
    DriverNotLoaded,
    /// The LU has properties ublk cannot present (e.g. 8 KiB blocks).
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot create the block device: {0}")]
    Create(String),
    /// A device is mounted, held or opened exclusively; the message names device and user.
    #[error("{0}")]
    InUse(String),
}

/// How devices are made; from `[devices]` in the configuration.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub enabled: bool,
    pub nr_queues: u16,
    pub queue_depth: u16,
    /// The daemon's runtime directory: `devices/ublkbN` in it holds KEY=value lines that the
    /// udev rule (systemd/90-lunlink.rules) imports for the stable /dev/disk names.
    pub runtime_dir: PathBuf,
    /// Create devices with UBLK_F_USER_RECOVERY(_REISSUE), so that they survive a daemon crash
    /// (the kernel queues their IO) and a new daemon takes them over: at start it finds them
    /// by the identity and geometry kept in each device's JSON under /run/ublksrvd, and
    /// [`DeviceManager::attach`] re-attaches such a device instead of making a new one.
    pub recoverable: bool,
    /// How a device's LU spreads IO over its paths, and the multipath timers.
    pub policy: Policy,
    pub timers: Timers,
}

impl DeviceConfig {
    pub fn from_config(d: &crate::config::Devices, m: &crate::config::Multipath) -> Self {
        let (policy, timers) = m.layer();
        DeviceConfig {
            enabled: d.enabled,
            nr_queues: d.nr_queues,
            queue_depth: d.queue_depth,
            runtime_dir: default_runtime_dir(),
            recoverable: true,
            policy,
            timers,
        }
    }
}

/// `$RUNTIME_DIRECTORY` (set by systemd's RuntimeDirectory=, first entry), else /run/lunlink.
pub fn default_runtime_dir() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|v| {
            let s = v.to_string_lossy().split(':').next().unwrap_or("").to_owned();
            (!s.is_empty()).then(|| PathBuf::from(s))
        })
        .unwrap_or_else(|| PathBuf::from("/run/lunlink"))
}

/// The block devices of the daemon, by logical unit. Cheap to clone.
#[derive(Clone)]
pub struct DeviceManager {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: DeviceConfig,
    /// The logical units, shared with the daemon's LUN objects: the daemon adds and removes
    /// paths, the devices present the LUs.
    registry: Arc<Registry>,
    state: Mutex<State>,
    /// Serialises creations, so two sessions to one LU end up with one device.
    create: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// By LU key (the WWID, or target/portal/LUN for LUs without one).
    devices: HashMap<String, Device>,
    /// Path id (chosen by the caller) -> LU key.
    paths: HashMap<u64, String>,
    /// Devices a previous daemon left in recovery (their IO waits in the kernel), by LU key,
    /// until a path to their LU attaches or [`DeviceManager::release_orphan`] gives up.
    orphans: HashMap<String, Orphan>,
}

struct Device {
    lu: Arc<Lu>,
    bdev: String,
    ctrl: Arc<UblkCtrl>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Taken over from a previous daemon: its control does not delete the device on drop.
    recovered: bool,
}

/// A device left by a previous daemon, waiting in the kernel's recovery state.
struct Orphan {
    dev_id: u32,
    ident: Ident,
    geo: Geometry,
    nr_queues: u16,
    depth: u16,
}

/// What the daemon tells about a device in recovery (for logging in to its LU again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanInfo {
    /// The LU key (WWID, or target/portal/LUN).
    pub key: String,
    pub device: String,
    pub target: String,
    pub portal: String,
    pub lun: u16,
}

impl DeviceManager {
    pub fn new(cfg: DeviceConfig) -> Self {
        remove_stale_udev_files(&cfg.runtime_dir);
        let orphans = if cfg.enabled && cfg.recoverable && Path::new(CONTROL).exists() {
            find_orphans(Path::new(&UblkCtrl::run_dir()))
        } else {
            HashMap::new()
        };
        let registry = Arc::new(Registry::new(cfg.policy, cfg.timers.clone()));
        DeviceManager {
            inner: Arc::new(Inner {
                registry,
                cfg,
                state: Mutex::new(State { orphans, ..State::default() }),
                create: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The devices a previous daemon left that wait for their LU (see [`Self::attach`]).
    pub fn orphans(&self) -> Vec<OrphanInfo> {
        let st = self.lock();
        let mut v: Vec<OrphanInfo> = st
            .orphans
            .iter()
            .map(|(key, o)| OrphanInfo {
                key: key.clone(),
                device: format!("/dev/ublkb{}", o.dev_id),
                target: o.ident.target.clone(),
                portal: o.ident.portal.clone(),
                lun: o.ident.lun,
            })
            .collect();
        v.sort_by(|a, b| a.device.cmp(&b.device));
        v
    }

    /// Gives up waiting for the LU of an orphaned device: the device is taken over without a
    /// path, so its queued and new IO fail with EIO (rather than wait for ever) until a
    /// session to the LU attaches. Nothing happens when the device was re-attached already.
    pub async fn release_orphan(&self, key: &str) {
        let _creating = self.inner.create.lock().await;
        let Some(o) = self.lock().orphans.remove(key) else { return };
        let bdev = format!("/dev/ublkb{}", o.dev_id);
        let lu = self.new_lu(key, o.geo.clone());
        match start_device(&self.inner.cfg, lu.clone(), o.ident, Some((o.dev_id, o.nr_queues, o.depth))).await {
            Ok(started) => {
                tracing::warn!(
                    lu = %key, device = %bdev,
                    "the logical unit is still unreachable: the device fails IO with EIO until a session to it logs in"
                );
                self.lock().devices.insert(
                    key.to_owned(),
                    Device { lu, bdev: started.bdev, ctrl: started.ctrl, thread: Some(started.thread), recovered: true },
                );
            }
            Err(e) => tracing::error!(lu = %key, device = %bdev, "cannot take over the device: {e}; its IO stays blocked"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether devices can be made on this host; the error says why not.
    pub fn availability(&self) -> Result<(), DeviceError> {
        if !self.inner.cfg.enabled {
            return Err(DeviceError::Disabled);
        }
        availability_at(Path::new(CONTROL))
    }

    /// Makes `info`'s LU available as a block device over `session`, or adds this path to the
    /// LU's existing device. Returns the device path (`/dev/ublkbN`). `path_id` names this path
    /// in [`Self::detach`] and [`Self::check_in_use`].
    pub async fn attach(&self, path_id: u64, session: &Session, info: &LunInfo) -> Result<String, DeviceError> {
        self.availability()?;
        let _creating = self.inner.create.lock().await;
        let (target, portal, max_burst) = {
            let si = session.info();
            (si.target_name.clone(), si.portal.clone(), si.params.max_burst_length)
        };
        let key = lu_key(info, &target, &portal);
        {
            let mut st = self.lock();
            if let Some(d) = st.devices.get(&key) {
                let bdev = d.bdev.clone();
                st.paths.insert(path_id, key.clone());
                tracing::info!(lu = %key, device = %bdev, target = %target, portal = %portal, "another path to the logical unit");
                return Ok(bdev);
            }
        }
        let orphan = self.lock().orphans.remove(&key);
        if let Some(o) = orphan {
            return self.recover(path_id, &key, info, max_burst, o).await;
        }
        let geo = Geometry::new(info, max_burst)?;
        let ident = Ident { target, portal, lun: info.lun, wwid: info.wwid.clone() };
        let lu = self.new_lu(&key, geo);
        let started = start_device(&self.inner.cfg, lu.clone(), ident, None).await?;
        let bdev = started.bdev.clone();
        tracing::info!(
            lu = %key, device = %bdev, size = lu.geo.blocks * u64::from(lu.geo.block_size),
            block_size = lu.geo.block_size, physical_block_size = 1u32 << lu.geo.physical_shift,
            max_io = lu.geo.io_buf_bytes, discard = ?lu.geo.discard, write_zeroes_blocks = lu.geo.write_zeroes_blocks,
            write_cache = lu.geo.write_cache, fua = lu.geo.fua, read_only = lu.geo.read_only,
            rotational = lu.geo.rotational, "block device ready"
        );
        let mut st = self.lock();
        st.paths.insert(path_id, key.clone());
        st.devices.insert(key, Device { lu, bdev: bdev.clone(), ctrl: started.ctrl, thread: Some(started.thread), recovered: false });
        Ok(bdev)
    }

    /// Re-attaches a device a previous daemon left, with its first path: the kernel then
    /// sends the IO it queued (and reissues what was in flight). The device keeps the
    /// geometry it was made with; a LU that changed meanwhile is reported.
    async fn recover(
        &self,
        path_id: u64,
        key: &str,
        info: &LunInfo,
        max_burst: u32,
        o: Orphan,
    ) -> Result<String, DeviceError> {
        let bdev = format!("/dev/ublkb{}", o.dev_id);
        match Geometry::new(info, max_burst) {
            Ok(now) if now.blocks != o.geo.blocks || now.block_size != o.geo.block_size => tracing::warn!(
                lu = %key, device = %bdev, blocks_before = o.geo.blocks, blocks_now = now.blocks,
                block_size_before = o.geo.block_size, block_size_now = now.block_size,
                "the logical unit changed while the daemon was away; the device keeps its old size"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(lu = %key, device = %bdev, "the logical unit changed while the daemon was away: {e}"),
        }
        let lu = self.new_lu(key, o.geo.clone());
        let t0 = std::time::Instant::now();
        let started = start_device(&self.inner.cfg, lu.clone(), o.ident, Some((o.dev_id, o.nr_queues, o.depth))).await?;
        tracing::info!(
            lu = %key, device = %started.bdev, took_ms = t0.elapsed().as_millis(),
            "block device re-attached after a daemon restart; its queued IO resumes"
        );
        let bdev = started.bdev.clone();
        let mut st = self.lock();
        st.paths.insert(path_id, key.to_owned());
        st.devices.insert(key.to_owned(), Device { lu, bdev: bdev.clone(), ctrl: started.ctrl, thread: Some(started.thread), recovered: true });
        Ok(bdev)
    }

    /// The presentation of LU `key` (shared through the registry, with whatever paths the
    /// daemon gave it) with the device's geometry.
    fn new_lu(&self, key: &str, geo: Geometry) -> Arc<Lu> {
        Arc::new(Lu { key: key.to_owned(), geo, mp: self.inner.registry.get(key), errors: AtomicU64::new(0) })
    }

    /// The logical units, shared with the daemon (it adds and removes their paths).
    pub fn registry(&self) -> Arc<Registry> {
        self.inner.registry.clone()
    }

    /// The multipath LU of the device serving path `path_id`, if any.
    pub fn logical_unit(&self, path_id: u64) -> Option<Arc<LogicalUnit>> {
        let st = self.lock();
        let key = st.paths.get(&path_id)?;
        st.devices.get(key).map(|d| d.lu.mp.clone())
    }

    /// The device serving path `path_id`, if any.
    pub fn device_of(&self, path_id: u64) -> Option<String> {
        let st = self.lock();
        let key = st.paths.get(&path_id)?;
        st.devices.get(key).map(|d| d.bdev.clone())
    }

    /// Fails with [`DeviceError::InUse`] when a device that would go away with these paths
    /// (the LU has no other path) is mounted, used as swap, held by another block device
    /// (device-mapper, MD RAID, ...) or opened exclusively. The message names device and user.
    pub async fn check_in_use(&self, path_ids: &[u64]) -> Result<(), DeviceError> {
        let bdevs: Vec<String> = {
            let st = self.lock();
            st.devices
                .values()
                .filter(|d| {
                    let paths = d.lu.mp.paths();
                    paths.iter().any(|p| path_ids.contains(&p.id)) && paths.iter().all(|p| path_ids.contains(&p.id))
                })
                .map(|d| d.bdev.clone())
                .collect()
        };
        if bdevs.is_empty() {
            return Ok(());
        }
        // Every holder of every device, so a person can release them all in one go.
        let found = tokio::task::spawn_blocking(move || bdevs.iter().flat_map(|b| usages(Path::new(b), true)).collect::<Vec<_>>())
            .await
            .map_err(|e| DeviceError::InUse(format!("cannot check whether the devices are in use: {e}")))?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(DeviceError::InUse(found.join("; ")))
        }
    }

    /// What holds the block device `bdev` now (mounts, swap, LVM and MD holders), in words;
    /// read on demand (Lun.UsedBy).
    pub async fn used_by(&self, bdev: &str) -> Vec<String> {
        if bdev.is_empty() {
            return Vec::new();
        }
        let b = PathBuf::from(bdev);
        tokio::task::spawn_blocking(move || usages(&b, false)).await.unwrap_or_default()
    }

    /// Removes path `path_id`; the LU's device goes away with its last path (IO in flight
    /// completes first, and the kernel writes back dirty pages through it). Unknown ids are
    /// ignored, so this can be called more than once.
    pub async fn detach(&self, path_id: u64) {
        // Not while a device is being made: a new path to this LU must not find the device
        // half gone.
        let _creating = self.inner.create.lock().await;
        let removed = {
            let mut st = self.lock();
            let Some(key) = st.paths.remove(&path_id) else { return };
            let Some(d) = st.devices.get(&key) else { return };
            let last = d.lu.mp.paths().iter().all(|p| p.id == path_id);
            if !last {
                d.lu.mp.remove_path(path_id);
                tracing::info!(lu = %key, device = %d.bdev, "path removed, the device stays");
                None
            } else {
                st.devices.remove(&key)
            }
        };
        if let Some(d) = removed {
            let bdev = d.bdev.clone();
            let lu = d.lu.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || remove_device(d)).await {
                tracing::error!(device = %bdev, "removing the device failed: {e}");
            }
            // Only now: IO that the removal flushed still needed the path.
            for p in lu.mp.paths() {
                lu.mp.remove_path(p.id);
            }
            tracing::info!(device = %bdev, lu = %lu.key, "block device removed");
        }
    }

    /// [`Self::detach`] in the background, for callers that cannot wait.
    pub fn detach_later(&self, path_ids: Vec<u64>) {
        let known: Vec<u64> = {
            let st = self.lock();
            path_ids.into_iter().filter(|id| st.paths.contains_key(id)).collect()
        };
        if known.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for id in known {
                me.detach(id).await;
            }
        });
    }
}

fn availability_at(control: &Path) -> Result<(), DeviceError> {
    if control.exists() {
        Ok(())
    } else {
        Err(DeviceError::DriverNotLoaded)
    }
}

/// The LU's identity: its WWID, or where it lives when it has none.
pub fn lu_key(info: &LunInfo, target: &str, portal: &str) -> String {
    if info.wwid.is_empty() {
        format!("{target},{portal},lun{}", info.lun)
    } else {
        info.wwid.clone()
    }
}

// ---- the logical unit and how it is presented ----------------------------------------------

/// A logical unit with its device geometry and its paths (the multipath layer).
struct Lu {
    key: String,
    geo: Geometry,
    mp: Arc<LogicalUnit>,
    errors: AtomicU64,
}

/// How discards reach the LU (SBC-3 §4.7.3, chosen as Linux's sd does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Discard {
    None,
    Unmap,
    WriteSameUnmap,
}

/// The device parameters of a LU, from what `probe_lun` found and the session's limits.
/// Kept in the device's JSON, so a restarted daemon serves the device as it was made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Geometry {
    block_size: u32,
    block_shift: u8,
    physical_shift: u8,
    blocks: u64,
    /// The ublk IO buffer per tag = the largest request the kernel sends.
    io_buf_bytes: u32,
    /// The largest transfer of one SCSI command (Block Limits); larger requests are split.
    max_xfer_bytes: usize,
    read_only: bool,
    write_cache: bool,
    fua: bool,
    rotational: bool,
    discard: Discard,
    discard_granularity: u32,
    discard_alignment: u32,
    max_discard_blocks: u32,
    /// 0: WRITE ZEROES is not offered.
    write_zeroes_blocks: u32,
    /// WRITE SAME may deallocate when zeroing (the LU reads unmapped blocks as zeros).
    write_zeroes_unmap: bool,
}

fn log2_exact(v: u64) -> Option<u8> {
    (v.is_power_of_two()).then(|| u8::try_from(v.trailing_zeros()).unwrap_or(u8::MAX))
}

impl Geometry {
    fn new(info: &LunInfo, max_burst: u32) -> Result<Geometry, DeviceError> {
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
    fn params(&self) -> sys::ublk_params {
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

/// Where a device's LU lives, for the udev rule and the device's JSON.
struct Ident {
    target: String,
    portal: String,
    lun: u16,
    wwid: String,
}

/// Characters kept in udev values and link names; the others become '_'.
fn udev_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".:-_@+,=[]".contains(c) { c } else { '_' })
        .collect()
}

/// The /dev/disk/by-path name systemd/90-lunlink.rules gives the device of LUN `lun` of
/// `target` reached through `portal` (open-iscsi's form, so fstab lines carry over).
pub fn by_path(target: &str, portal: &str, lun: u16) -> String {
    format!("/dev/disk/by-path/ip-{}-iscsi-{}-lun-{lun}", udev_safe(portal), udev_safe(target))
}

/// The /dev/disk/by-id names the rule gives a device whose LU has identifier `wwid`.
pub fn by_id(wwid: &str) -> Vec<String> {
    if wwid.is_empty() {
        return Vec::new();
    }
    let mut v = Vec::new();
    if let Some(hex) = wwid.strip_prefix("naa.").filter(|h| h.chars().all(|c| c.is_ascii_hexdigit())) {
        v.push(format!("/dev/disk/by-id/wwn-0x{hex}"));
    }
    v.push(format!("/dev/disk/by-id/lunlink-{}", udev_safe(wwid)));
    v
}

impl Ident {
    /// KEY=value lines for `IMPORT{file}` in systemd/90-lunlink.rules.
    fn udev_env(&self) -> String {
        let mut s = format!(
            "LUNLINK_TARGET={}\nLUNLINK_PORTAL={}\nLUNLINK_LUN={}\n",
            udev_safe(&self.target),
            udev_safe(&self.portal),
            self.lun
        );
        if !self.wwid.is_empty() {
            s.push_str(&format!("LUNLINK_WWID={}\n", udev_safe(&self.wwid)));
            if let Some(hex) = self.wwid.strip_prefix("naa.") {
                if hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    s.push_str(&format!("LUNLINK_WWN={hex}\n"));
                }
            }
        }
        s
    }
}

fn udev_file(runtime_dir: &Path, dev_id: u32) -> PathBuf {
    runtime_dir.join("devices").join(format!("ublkb{dev_id}"))
}

/// Files left by a daemon that died without removing its devices: the kernel removed the
/// devices then, and a new device with the same number must not inherit the old identity.
/// Files of devices that still exist stay (a device that survived, for recovery).
fn remove_stale_udev_files(runtime_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(runtime_dir.join("devices")) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !Path::new("/sys/block").join(&name).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What a device's libublk JSON (`/run/ublksrvd/NNNN.json`) says about it, if it is one of
/// ours: the LU's identity and the geometry it was made with.
fn parse_device_json(text: &str) -> Option<(Ident, Geometry)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["target"]["tgt_type"].as_str() != Some(TARGET_TYPE) {
        return None;
    }
    let d = &v["target_data"];
    let ident = Ident {
        target: d["target"].as_str()?.to_owned(),
        portal: d["portal"].as_str()?.to_owned(),
        lun: u16::try_from(d["lun"].as_u64()?).ok()?,
        wwid: d["wwid"].as_str()?.to_owned(),
    };
    let geo: Geometry = serde_json::from_value(d["geometry"].clone()).ok()?;
    Some((ident, geo))
}

/// Whether process `pid` exists.
fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The devices in `run_dir` (libublk's JSON files) that a previous lunlinkd made and left
/// behind: they still exist in the kernel and their server is gone. JSON files of ours whose
/// device no longer exists are removed. Blocking; runs on a thread of its own, because
/// libublk's control commands use a per-thread ring.
fn find_orphans(run_dir: &Path) -> HashMap<String, Orphan> {
    let run_dir = run_dir.to_owned();
    let found = std::thread::Builder::new()
        .name("ublk-recover-scan".into())
        .spawn(move || scan_orphans(&run_dir))
        .map(|t| t.join().unwrap_or_default());
    match found {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("cannot look for block devices left by a previous daemon: {e}");
            HashMap::new()
        }
    }
}

fn scan_orphans(run_dir: &Path) -> HashMap<String, Orphan> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(run_dir) else { return out };
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(dev_id) = name.strip_suffix(".json").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let Some((ident, geo)) = parse_device_json(&text) else { continue };
        let bdev = format!("/dev/ublkb{dev_id}");
        if !Path::new(&format!("/sys/class/ublk-char/ublkc{dev_id}")).exists() {
            // The kernel removed it (a daemon without recovery, or deleted): forget it.
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let ctrl = match UblkCtrl::new_simple(i32::try_from(dev_id).unwrap_or(i32::MAX)) {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(device = %bdev, "cannot read the state of a device left by a previous daemon: {}", ublk_error(&err));
                continue;
            }
        };
        let info = ctrl.dev_info();
        let live = u32::from(info.state) == sys::UBLK_S_DEV_LIVE;
        if live && info.ublksrv_pid != me && process_alive(info.ublksrv_pid) {
            tracing::info!(device = %bdev, pid = info.ublksrv_pid, "device is served by another running process; not taken over");
            continue;
        }
        if info.flags & u64::from(sys::UBLK_F_USER_RECOVERY) == 0 {
            continue;
        }
        if info.max_io_buf_bytes != geo.io_buf_bytes {
            tracing::error!(device = %bdev, "device left by a previous daemon does not match its JSON; not taken over");
            continue;
        }
        let key = if ident.wwid.is_empty() { format!("{},{},lun{}", ident.target, ident.portal, ident.lun) } else { ident.wwid.clone() };
        tracing::info!(
            device = %bdev, lu = %key, target = %ident.target, portal = %ident.portal, lun = ident.lun,
            "found a block device left by a previous daemon; its IO waits until the logical unit is reached again"
        );
        out.insert(key, Orphan { dev_id, ident, geo, nr_queues: info.nr_hw_queues, depth: info.queue_depth });
    }
    out
}

fn write_udev_file(path: &Path, content: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

// ---- device lifecycle ------------------------------------------------------------------------

struct Started {
    bdev: String,
    ctrl: Arc<UblkCtrl>,
    thread: std::thread::JoinHandle<()>,
}

type StartReply = Result<(String, Arc<UblkCtrl>), DeviceError>;

fn ublk_error(e: &UblkError) -> String {
    match e {
        UblkError::OtherError(n) | UblkError::UringIOError(n) => io::Error::from_raw_os_error(-n).to_string(),
        UblkError::IOError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// A device to take over from a previous daemon: (id, queues, depth) as the kernel has them.
type Recover = Option<(u32, u16, u16)>;

/// Starts a device's control thread and waits until /dev/ublkbN exists (or creation failed).
/// With `recover`, the existing device is taken over instead (START/END_USER_RECOVERY).
async fn start_device(cfg: &DeviceConfig, lu: Arc<Lu>, ident: Ident, recover: Recover) -> Result<Started, DeviceError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<StartReply>();
    let cfg = cfg.clone();
    let rt = tokio::runtime::Handle::current();
    let name = format!("ublk-{}", lu.key.chars().rev().take(8).collect::<String>());
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || device_thread(&cfg, lu, &ident, recover, &rt, tx))
        .map_err(|e| DeviceError::Create(format!("cannot start a thread: {e}")))?;
    match rx.await {
        Ok(Ok((bdev, ctrl))) => Ok(Started { bdev, ctrl, thread }),
        Ok(Err(e)) => {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            Err(e)
        }
        Err(_) => Err(DeviceError::Create("the device thread ended before the device was ready".into())),
    }
}

/// Creates the device and serves it until it is stopped; then deletes it (when the last
/// handle on the control drops).
fn device_thread(
    cfg: &DeviceConfig,
    lu: Arc<Lu>,
    ident: &Ident,
    recover: Recover,
    rt: &tokio::runtime::Handle,
    reply: tokio::sync::oneshot::Sender<StartReply>,
) {
    let reply = Arc::new(Mutex::new(Some(reply)));
    let send = move |r: StartReply| {
        if let Some(tx) = reply.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(r);
        }
    };
    let (nr_queues, depth) = match recover {
        Some((_, q, d)) => (q.max(1), d.max(1)),
        None => (cfg.nr_queues.max(1), cfg.queue_depth.max(1)),
    };
    // One eventfd per queue, made here so a queue thread cannot fail before it registers.
    let mut wakes = Vec::new();
    for _ in 0..nr_queues {
        match QueueWake::new() {
            Ok(w) => wakes.push(Arc::new(w)),
            Err(e) => return send(Err(DeviceError::Create(format!("cannot create an eventfd: {e}")))),
        }
    }
    let wakes = Arc::new(wakes);
    let mut ctrl_flags = u64::from(sys::UBLK_F_CMD_IOCTL_ENCODE);
    if cfg.recoverable {
        ctrl_flags |= u64::from(sys::UBLK_F_USER_RECOVERY | sys::UBLK_F_USER_RECOVERY_REISSUE);
    }
    let builder = UblkCtrlBuilder::default()
        .name(TARGET_TYPE)
        .nr_queues(nr_queues)
        .depth(depth)
        .io_buf_bytes(lu.geo.io_buf_bytes);
    let built = match recover {
        // The kernel's view of the device (flags, queues) is read back by libublk; the
        // device must be in recovery (its server gone) before queues can attach.
        Some((id, _, _)) => builder
            .id(i32::try_from(id).unwrap_or(i32::MAX))
            .dev_flags(UblkFlags::UBLK_DEV_F_RECOVER_DEV)
            .build()
            .and_then(|c| c.start_user_recover().map(|_| c))
            .map_err(|e| DeviceError::Create(format!("taking over ublk device {id} failed: {}", ublk_error(&e)))),
        None => builder
            .id(-1)
            .ctrl_flags(ctrl_flags)
            // Asynchronous delete: a synchronous DEL_DEV waits until nobody holds the disk
            // any more, which a filesystem still mounted after a forced logout never allows.
            .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV | UblkFlags::UBLK_DEV_F_DEL_DEV_ASYNC)
            .build()
            .map_err(|e| DeviceError::Create(format!("adding a ublk device failed: {}", ublk_error(&e)))),
    };
    let ctrl = match built {
        Ok(c) => Arc::new(c),
        Err(e) => return send(Err(e)),
    };
    let dev_id = ctrl.dev_info().dev_id;
    let env_file = udev_file(&cfg.runtime_dir, dev_id);
    let geo = lu.geo.clone();
    let identity = serde_json::json!({
        "wwid": ident.wwid, "target": ident.target, "portal": ident.portal, "lun": ident.lun,
        "geometry": geo,
    });
    let udev_env = ident.udev_env();
    let env_path = env_file.clone();
    let tgt_init = move |dev: &mut UblkDev| -> Result<(), UblkError> {
        dev.tgt.dev_size = geo.blocks * u64::from(geo.block_size);
        dev.tgt.params = geo.params();
        // Room for the eventfd poll next to one command per tag.
        dev.tgt.sq_depth = depth.saturating_add(1);
        dev.tgt.cq_depth = depth.saturating_add(1);
        dev.set_target_json(identity);
        // Before START_DEV, so udev finds it with the disk's "add" event.
        if let Err(e) = write_udev_file(&env_path, &udev_env) {
            tracing::warn!(path = %env_path.display(), "cannot write the udev properties: {e}");
        }
        Ok(())
    };
    let q_lu = lu.clone();
    let q_rt = rt.clone();
    let queue_fn = move |qid: u16, dev: &UblkDev| {
        if let Some(w) = wakes.get(usize::from(qid)) {
            queue_thread(qid, dev, &q_lu, w, &q_rt);
        }
    };
    let ready_ctrl = ctrl.clone();
    let ready_send = send.clone();
    let ready = move |c: &UblkCtrl| ready_send(Ok((c.get_bdev_path(), ready_ctrl)));
    let r = ctrl.run_target(tgt_init, queue_fn, ready);
    if let Err(e) = &r {
        tracing::warn!(lu = %lu.key, "ublk device {dev_id} ended: {}", ublk_error(e));
        send(Err(DeviceError::Create(format!("starting ublk device {dev_id} failed: {}", ublk_error(e)))));
    }
    let _ = std::fs::remove_file(&env_file);
}

/// Stops a device, waits for its threads and deletes it. Blocking.
fn remove_device(mut d: Device) {
    // Control commands go through a per-thread ring that this thread may not have yet.
    let ring = libublk::ublk_init_ctrl_task_ring(|ring| {
        if ring.is_none() {
            *ring = Some(io_uring::IoUring::<io_uring::squeue::Entry128>::builder().build(16)?);
        }
        Ok(())
    });
    if let Err(e) = ring {
        tracing::error!(device = %d.bdev, "cannot set up the ublk control ring: {}", ublk_error(&e));
        // Dropping the control without a ring would panic in libublk; the device stays until
        // the daemon exits and the kernel removes it.
        std::mem::forget(d);
        return;
    }
    if let Err(e) = d.ctrl.kill_dev() {
        tracing::warn!(device = %d.bdev, "stopping the device failed: {}", ublk_error(&e));
    }
    if let Some(t) = d.thread.take() {
        let _ = t.join();
    }
    // A control that took the device over does not delete it when dropped.
    if d.recovered {
        if let Err(e) = d.ctrl.del_dev_async() {
            tracing::warn!(device = %d.bdev, "deleting the device failed: {}", ublk_error(&e));
        }
    }
    // The last handle: dropping it deletes the device (DEL_DEV_ASYNC) on this thread's ring.
    drop(d);
}

// ---- queues and IO -----------------------------------------------------------------------------

/// Wakes a queue thread that sleeps in io_uring: an eventfd with an io_uring poll pending.
struct QueueWake {
    fd: OwnedFd,
    /// Set by the first wake since the queue thread last drained the eventfd (saves writes).
    pending: AtomicBool,
}

impl QueueWake {
    fn new() -> io::Result<QueueWake> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is valid and owned by nobody else.
        Ok(QueueWake { fd: unsafe { OwnedFd::from_raw_fd(fd) }, pending: AtomicBool::new(false) })
    }

    fn notify(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), std::ptr::addr_of!(one).cast(), 8) };
        }
    }

    /// Called on the queue thread after the poll fired: reset the counter, then accept new
    /// notifications. A wake between the two is not lost: its task is already scheduled and
    /// runs in this same round of the executor.
    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; the fd is non-blocking.
        unsafe { libc::read(self.fd.as_raw_fd(), std::ptr::addr_of_mut!(v).cast(), 8) };
        self.pending.store(false, Ordering::SeqCst);
    }
}

/// Keeps a poll on the queue's eventfd pending in the queue's io_uring.
async fn pump(w: Arc<QueueWake>) {
    loop {
        let sqe = io_uring::opcode::PollAdd::new(io_uring::types::Fd(w.fd.as_raw_fd()), u32::try_from(libc::POLLIN).unwrap_or(1))
            .build();
        match libublk::uring_async::ublk_submit_sqe_async(sqe, UblkUringData::Target as u64).await {
            Ok(r) if r >= 0 => w.drain(),
            _ => return,
        }
    }
}

/// The waker engine futures of one tag see: wakes the tag's task and the queue thread.
struct TagWaker {
    task: Mutex<Option<Waker>>,
    queue: Arc<QueueWake>,
}

impl TagWaker {
    fn register(&self, w: &Waker) {
        let mut t = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if !t.as_ref().is_some_and(|old| old.will_wake(w)) {
            *t = Some(w.clone());
        }
    }
}

impl Wake for TagWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.wake();
        }
        self.queue.notify();
    }
}

/// Polls `fut` (an engine future, completed from other threads) under the tag's waker.
async fn cross<F: Future>(tw: &TagWaker, waker: &Waker, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        tw.register(cx.waker());
        fut.as_mut().poll(&mut Context::from_waker(waker))
    })
    .await
}

struct QueueCtx {
    lu: Arc<Lu>,
    wake: Arc<QueueWake>,
    /// One block of zeroes: the data of WRITE SAME.
    zero: Box<[u8]>,
}

fn queue_thread(qid: u16, dev: &UblkDev, lu: &Arc<Lu>, wake: &Arc<QueueWake>, rt: &tokio::runtime::Handle) {
    let _rt = rt.enter();
    let q = match UblkQueue::new(qid, dev) {
        Ok(q) => Rc::new(q),
        Err(e) => {
            tracing::error!(lu = %lu.key, queue = qid, "cannot set up the ublk queue: {}", ublk_error(&e));
            return;
        }
    };
    let ctx = Rc::new(QueueCtx {
        lu: lu.clone(),
        wake: wake.clone(),
        zero: vec![0u8; lu.geo.block_size as usize].into_boxed_slice(),
    });
    let exe = Rc::new(smol::LocalExecutor::new());
    let mut tasks = Vec::new();
    for tag in q.tags() {
        let q = q.clone();
        let ctx = ctx.clone();
        tasks.push(exe.spawn(async move {
            match io_task(&q, tag, &ctx).await {
                Ok(()) | Err(UblkError::QueueIsDown) => {}
                Err(e) => tracing::error!(lu = %ctx.lu.key, tag, "ublk IO task failed: {}", ublk_error(&e)),
            }
        }));
    }
    let pump_task = exe.spawn(pump(wake.clone()));
    let exe2 = exe.clone();
    let q2 = q.clone();
    smol::block_on(exe.run(async move {
        let run_ops = || while exe2.try_tick() {};
        let done = || tasks.iter().all(|t| t.is_finished());
        if let Err(e) = libublk::wait_and_handle_io_events(&q2, Some(20), run_ops, done).await {
            tracing::warn!(queue = qid, "ublk queue ended: {}", ublk_error(&e));
        }
    }));
    drop(pump_task);
}

async fn io_task(q: &UblkQueue<'_>, tag: u16, ctx: &QueueCtx) -> Result<(), UblkError> {
    let mut buf = IoBuf::<u8>::new(ctx.lu.geo.io_buf_bytes as usize);
    let tw = Arc::new(TagWaker { task: Mutex::new(None), queue: ctx.wake.clone() });
    let waker = Waker::from(tw.clone());
    q.submit_io_prep_cmd(tag, BufDesc::Slice(buf.as_slice()), 0, Some(&buf)).await?;
    loop {
        let iod = *q.get_iod(tag);
        let res = serve(ctx, &iod, buf.as_mut_slice(), &tw, &waker).await;
        q.submit_io_commit_cmd(tag, BufDesc::Slice(buf.as_slice()), res).await?;
    }
}

/// A request's range in blocks, checked against the LU.
fn blocks_of(geo: &Geometry, iod: &sys::ublksrv_io_desc) -> Result<(u64, u64), i32> {
    let start = iod.start_sector.checked_mul(512).ok_or(-libc::EINVAL)?;
    let bytes = u64::from(iod.nr_sectors) * 512;
    let bs = u64::from(geo.block_size);
    if start % bs != 0 || bytes % bs != 0 {
        return Err(-libc::EINVAL);
    }
    let (lba, n) = (start / bs, bytes / bs);
    if lba.checked_add(n).is_none_or(|end| end > geo.blocks) {
        return Err(-libc::EINVAL);
    }
    Ok((lba, n))
}

/// A request from the kernel, checked against the LU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Read { lba: u64, len: usize },
    Write { lba: u64, len: usize, fua: bool },
    Flush,
    Discard { lba: u64, blocks: u32 },
    WriteZeroes { lba: u64, blocks: u32, unmap: bool },
}

impl Request {
    fn parse(geo: &Geometry, iod: &sys::ublksrv_io_desc, buf_len: usize) -> Result<Request, i32> {
        let op = iod.op_flags & 0xff;
        let bytes = |n: u64| -> Result<usize, i32> {
            let len = usize::try_from(n * u64::from(geo.block_size)).map_err(|_| -libc::EINVAL)?;
            if len > buf_len {
                return Err(-libc::EINVAL);
            }
            Ok(len)
        };
        let blocks32 = |n: u64| u32::try_from(n).map_err(|_| -libc::EINVAL);
        Ok(match op {
            sys::UBLK_IO_OP_READ => {
                let (lba, n) = blocks_of(geo, iod)?;
                Request::Read { lba, len: bytes(n)? }
            }
            sys::UBLK_IO_OP_WRITE => {
                let (lba, n) = blocks_of(geo, iod)?;
                let fua = geo.fua && iod.op_flags & sys::UBLK_IO_F_FUA != 0;
                Request::Write { lba, len: bytes(n)?, fua }
            }
            // start_sector is u64::MAX here: nothing to check.
            sys::UBLK_IO_OP_FLUSH => Request::Flush,
            sys::UBLK_IO_OP_DISCARD if geo.discard != Discard::None => {
                let (lba, n) = blocks_of(geo, iod)?;
                Request::Discard { lba, blocks: blocks32(n)? }
            }
            sys::UBLK_IO_OP_WRITE_ZEROES if geo.write_zeroes_blocks > 0 => {
                let (lba, n) = blocks_of(geo, iod)?;
                let unmap = geo.write_zeroes_unmap && iod.op_flags & sys::UBLK_IO_F_NOUNMAP == 0;
                Request::WriteZeroes { lba, blocks: blocks32(n)?, unmap }
            }
            _ => return Err(-libc::EOPNOTSUPP),
        })
    }
}

/// Serves one request; returns bytes moved or -errno. The LU's multipath layer picks the
/// path and decides after a failure: a path error moves the request to another path, a target
/// error is the LU's answer. Everything is polled under the tag's waker (`cross`): engine
/// completions and the layer's timers wake the queue thread.
async fn serve(ctx: &QueueCtx, iod: &sys::ublksrv_io_desc, buf: &mut [u8], tw: &TagWaker, waker: &Waker) -> i32 {
    let req = match Request::parse(&ctx.lu.geo, iod, buf.len()) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mp = &ctx.lu.mp;
    let result = cross(tw, waker, async {
        let mut a = mp.attempt();
        loop {
            let path = mp.next_path(&mut a).await?;
            match mp.run_on(&path, &mut a, run(ctx, &path, req, &mut *buf)).await {
                Tried::Done(r) => return r,
                Tried::Again => continue,
            }
        }
    })
    .await;
    match result {
        Ok(n) => n,
        Err(e) => {
            let errno = e.errno();
            let count = ctx.lu.errors.fetch_add(1, Ordering::Relaxed);
            if count < 20 || count.is_multiple_of(1000) {
                tracing::warn!(lu = %ctx.lu.key, request = ?req, errno, errors = count + 1, "IO failed: {e}");
            }
            -errno
        }
    }
}

/// Runs a request on one path; returns the bytes moved.
async fn run(ctx: &QueueCtx, path: &IoPath, req: Request, buf: &mut [u8]) -> Result<i32, ScsiOpError> {
    let bs = ctx.lu.geo.block_size;
    let (lba, len, write, fua) = match req {
        Request::Read { lba, len } => (lba, len, false, false),
        Request::Write { lba, len, fua } => (lba, len, true, fua),
        Request::Flush => return path.session.flush(path.lun).await.map(|()| 0),
        Request::Discard { lba, blocks } => {
            return match ctx.lu.geo.discard {
                Discard::WriteSameUnmap => write_same(ctx, path, lba, blocks, true).await.map(|()| 0),
                _ => unmap(path, lba, blocks).await.map(|()| 0),
            }
        }
        Request::WriteZeroes { lba, blocks, unmap } => {
            return write_same(ctx, path, lba, blocks, unmap).await.map(|()| 0)
        }
    };
    // Larger than the LU takes in one command (Block Limits): in pieces, in order.
    let step = ctx.lu.geo.max_xfer_bytes.max(bs as usize);
    for (i, chunk) in buf[..len].chunks_mut(step).enumerate() {
        let at = lba + u64::try_from(i * step / bs as usize).unwrap_or(0);
        // SAFETY: the chunk is part of this tag's ublk IO buffer, which only this tag's task
        // uses while its request is in flight, and which is freed only after the task (and
        // so this future, which the queue executor never leaks) has been dropped.
        let lent = unsafe { RawIoBuf::new(chunk.as_mut_ptr(), chunk.len()) };
        if write {
            path.session.write(path.lun, at, bs, lent, fua).await.1?;
        } else {
            path.session.read(path.lun, at, bs, lent).await.1?;
        }
    }
    Ok(i32::try_from(len).unwrap_or(i32::MAX))
}

/// WRITE SAME(16) of the queue's zero block (SBC-3 §5.45).
async fn write_same(ctx: &QueueCtx, path: &IoPath, lba: u64, blocks: u32, unmap: bool) -> Result<(), ScsiOpError> {
    // SAFETY: the queue's zero block outlives every tag task of the queue and is never
    // written: the engine only reads the data of a data-out command.
    let zero = unsafe { RawIoBuf::new(ctx.zero.as_ptr().cast_mut(), ctx.zero.len()) };
    path.session.write_same(path.lun, lba, blocks, unmap, zero).await.1
}

/// UNMAP of one range (SBC-3 §5.28).
async fn unmap(path: &IoPath, lba: u64, blocks: u32) -> Result<(), ScsiOpError> {
    path.session.unmap(path.lun, &[(lba, blocks)]).await
}

// ---- is a device in use? ------------------------------------------------------------------------

/// Undoes the octal escapes of /proc/*/mountinfo (`\040` for a space, ...).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points of device `majmin` ("259:0") in a mountinfo text, in order.
fn mounts_of(mountinfo: &str, majmin: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let _id = f.next()?;
            let _parent = f.next()?;
            let dev = f.next()?;
            let _root = f.next()?;
            let point = f.next()?;
            (dev == majmin).then(|| unescape_mount(point))
        })
        .collect()
}

/// The mount point of the first mount of device `majmin` in a mountinfo text.
#[cfg(test)]
fn mounted_at(mountinfo: &str, majmin: &str) -> Option<String> {
    mounts_of(mountinfo, majmin).into_iter().next()
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// The disk and its partitions: (name, "major:minor").
fn disk_and_partitions(name: &str) -> Vec<(String, String)> {
    let base = Path::new("/sys/block").join(name);
    let mut out = Vec::new();
    if let Some(d) = read_trim(&base.join("dev")) {
        out.push((name.to_owned(), d));
    }
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let pname = e.file_name().to_string_lossy().into_owned();
            if pname.starts_with(name) && e.path().join("partition").exists() {
                if let Some(d) = read_trim(&e.path().join("dev")) {
                    out.push((pname, d));
                }
            }
        }
    }
    out
}

/// Who holds a disk or partition (its sysfs dir) through sysfs, in words: "RAID md0",
/// "LVM volume group vg0 (dm-0, vg0-data)", "device-mapper crypt1 (dm-1)".
fn holders(sys_dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(sys_dir.join("holders")) else { return Vec::new() };
    let mut out: Vec<String> = rd
        .flatten()
        .map(|e| {
            let h = e.file_name().to_string_lossy().into_owned();
            let dm = Path::new("/sys/block").join(&h).join("dm");
            match read_trim(&dm.join("name")) {
                Some(n) if !n.is_empty() => {
                    let lvm = read_trim(&dm.join("uuid")).is_some_and(|u| u.starts_with("LVM-"));
                    match lvm_volume_group(&n).filter(|_| lvm) {
                        Some(vg) => format!("LVM volume group {vg} ({h}, {n})"),
                        None => format!("device-mapper {n} ({h})"),
                    }
                }
                _ if h.starts_with("md") => format!("RAID {h}"),
                _ => h,
            }
        })
        .collect();
    out.sort();
    out
}

/// The volume group of an LVM device-mapper name "vg-lv" (a '-' inside a name is doubled).
fn lvm_volume_group(dm_name: &str) -> Option<String> {
    let b = dm_name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            return Some(dm_name[..i].replace("--", "-"));
        }
        i += 1;
    }
    None
}

/// A process (other than us) with `dev` open: "fio (pid 42)".
fn opener(dev: &Path) -> Option<String> {
    let me = std::process::id().to_string();
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        if fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == dev)) {
            let comm = read_trim(&p.path().join("comm")).unwrap_or_else(|| "?".into());
            return Some(format!("{comm} (pid {pid})"));
        }
    }
    None
}

/// Everything that holds `bdev` (/dev/ublkbN) or its partitions now, in words: mounts
/// (every mount point), swap, device-mapper (LVM) and MD holders, and, when `probe_exclusive`,
/// other exclusive openers (found by trying an exclusive open, so only when about to remove).
fn usages(bdev: &Path, probe_exclusive: bool) -> Vec<String> {
    let mut out = Vec::new();
    let Some(name) = bdev.file_name().map(|n| n.to_string_lossy().into_owned()) else { return out };
    let devs = disk_and_partitions(&name);
    // PID 1's mounts are the users' (the daemon may run with PrivateMounts=yes); ours too.
    let mountinfos: Vec<String> = ["/proc/1/mountinfo", "/proc/self/mountinfo"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    for (n, majmin) in &devs {
        let mut points: Vec<String> = mountinfos.iter().flat_map(|mi| mounts_of(mi, majmin)).collect();
        points.dedup();
        let mut seen = std::collections::BTreeSet::new();
        for at in points.into_iter().filter(|p| seen.insert(p.clone())) {
            out.push(format!("/dev/{n} is mounted on {at}"));
        }
    }
    if let Ok(swaps) = std::fs::read_to_string("/proc/swaps") {
        for (n, _) in &devs {
            let dev = format!("/dev/{n}");
            if swaps.lines().skip(1).any(|l| l.split_whitespace().next() == Some(dev.as_str())) {
                out.push(format!("{dev} is in use as swap"));
            }
        }
    }
    for (n, _) in &devs {
        let sys_dir = if *n == name { Path::new("/sys/block").join(n) } else { Path::new("/sys/block").join(&name).join(n) };
        for h in holders(&sys_dir) {
            out.push(format!("/dev/{n} is in {h}"));
        }
    }
    if !probe_exclusive || !out.is_empty() {
        return out;
    }
    for (n, _) in &devs {
        let dev = PathBuf::from(format!("/dev/{n}"));
        let Ok(c) = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes()) else { continue };
        // SAFETY: a NUL-terminated path; the fd, if any, is closed right away.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd >= 0 {
            // SAFETY: fd was just opened by us.
            unsafe { libc::close(fd) };
            continue;
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::EBUSY) {
            out.push(match opener(&dev) {
                Some(who) => format!("{} is opened exclusively by {who}", dev.display()),
                None => format!("{} is opened exclusively by another program", dev.display()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use lunlink_scsi::{BlockLimits, Capacity, LogicalBlockProvisioning};

    fn lun(block_size: u32, blocks: u64) -> LunInfo {
        LunInfo {
            lun: 1,
            wwid: "naa.60000000000000000e00000000010001".into(),
            capacity: Some(Capacity {
                blocks,
                block_size,
                phys_block_exp: 0,
                lowest_aligned_lba: 0,
                lbpme: false,
                lbprz: false,
                protection: None,
            }),
            ..LunInfo::default()
        }
    }

    #[test]
    fn plain_disk() {
        let g = Geometry::new(&lun(512, 1 << 20), 262_144).unwrap();
        assert_eq!((g.block_size, g.block_shift, g.physical_shift), (512, 9, 9));
        assert_eq!(g.io_buf_bytes, 262_144, "the burst length bounds the IO size");
        assert_eq!(g.discard, Discard::None);
        assert_eq!(g.write_zeroes_blocks, 0);
        let p = g.params();
        assert_eq!(p.types, sys::UBLK_PARAM_TYPE_BASIC);
        assert_eq!(p.basic.dev_sectors, 1 << 20);
        assert_eq!(p.basic.max_sectors, 512);
        assert_eq!(p.basic.attrs, 0);
    }

    #[test]
    fn large_blocks_cache_and_limits() {
        let mut info = lun(4096, 1000);
        info.write_cache = true;
        info.fua = true;
        info.read_only = true;
        info.rotational = Some(true);
        info.block_limits = Some(BlockLimits { max_xfer_len: 16, ..BlockLimits::default() });
        let g = Geometry::new(&info, 16 << 20).unwrap();
        assert_eq!(g.io_buf_bytes, 65_536, "the LU's maximum transfer bounds the IO size");
        assert_eq!(g.max_xfer_bytes, 65_536);
        let p = g.params();
        assert_eq!(p.basic.logical_bs_shift, 12);
        assert_eq!(p.basic.dev_sectors, 8000);
        let want = sys::UBLK_ATTR_READ_ONLY | sys::UBLK_ATTR_ROTATIONAL | sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA;
        assert_eq!(p.basic.attrs, want);
        // FUA without a write cache means nothing to the kernel: not offered.
        info.write_cache = false;
        assert!(!Geometry::new(&info, 16 << 20).unwrap().fua);
    }

    #[test]
    fn physical_blocks_and_tiny_transfer_limits() {
        let mut info = lun(512, 1 << 20);
        if let Some(c) = info.capacity.as_mut() {
            c.phys_block_exp = 3;
        }
        info.block_limits = Some(BlockLimits { max_xfer_len: 2, ..BlockLimits::default() });
        let g = Geometry::new(&info, 262_144).unwrap();
        assert_eq!(g.physical_shift, 12);
        // A page at least, split into 1 KiB commands.
        assert_eq!(g.io_buf_bytes, 4096);
        assert_eq!(g.max_xfer_bytes, 1024);
    }

    #[test]
    fn unsupported_block_sizes_are_refused_with_a_reason() {
        for bs in [8192, 520, 256] {
            let e = Geometry::new(&lun(bs, 100), 262_144).unwrap_err();
            assert!(e.to_string().contains(&format!("logical block size {bs}")), "{e}");
        }
        assert!(Geometry::new(&LunInfo::default(), 262_144).is_err());
    }

    #[test]
    fn discard_follows_provisioning() {
        let mut info = lun(512, 1 << 20);
        if let Some(c) = info.capacity.as_mut() {
            c.lbpme = true;
        }
        info.block_limits = Some(BlockLimits {
            max_unmap_lba_count: 0xffff_ffff,
            opt_unmap_granularity: 8,
            unmap_granularity_alignment: Some(2),
            ..BlockLimits::default()
        });
        info.provisioning = Some(LogicalBlockProvisioning { lbpu: true, ..LogicalBlockProvisioning::default() });
        let g = Geometry::new(&info, 262_144).unwrap();
        assert_eq!(g.discard, Discard::Unmap);
        assert_eq!(g.max_discard_blocks, 0x7f_ffff);
        assert_eq!(g.discard_granularity, 4096);
        assert_eq!(g.discard_alignment, 1024);
        let p = g.params();
        assert_eq!(p.types, sys::UBLK_PARAM_TYPE_BASIC | sys::UBLK_PARAM_TYPE_DISCARD);
        assert_eq!(p.discard.max_discard_segments, 1);
        assert_eq!(p.discard.max_discard_sectors, 0x7f_ffff);
        // WRITE SAME with UNMAP instead of UNMAP.
        info.provisioning = Some(LogicalBlockProvisioning { lbpws: true, lbprz: true, ..LogicalBlockProvisioning::default() });
        let g = Geometry::new(&info, 262_144).unwrap();
        assert_eq!(g.discard, Discard::WriteSameUnmap);
        assert!(g.write_zeroes_blocks > 0 && g.write_zeroes_unmap);
        // Not thin provisioned (LBPME clear): no discard at all.
        if let Some(c) = info.capacity.as_mut() {
            c.lbpme = false;
        }
        assert_eq!(Geometry::new(&info, 262_144).unwrap().discard, Discard::None);
    }

    #[test]
    fn request_ranges_are_checked() {
        let g = Geometry::new(&lun(4096, 100), 262_144).unwrap();
        let iod = |start: u64, n: u32| sys::ublksrv_io_desc { start_sector: start, nr_sectors: n, ..Default::default() };
        assert_eq!(blocks_of(&g, &iod(8, 16)), Ok((1, 2)));
        assert_eq!(blocks_of(&g, &iod(1, 8)), Err(-libc::EINVAL), "misaligned start");
        assert_eq!(blocks_of(&g, &iod(0, 4)), Err(-libc::EINVAL), "partial block");
        assert_eq!(blocks_of(&g, &iod(792, 16)), Err(-libc::EINVAL), "past the end");
        assert_eq!(blocks_of(&g, &iod(u64::MAX, 0)), Err(-libc::EINVAL), "a flush's start sector");
    }

    #[test]
    fn requests_map_to_what_the_lu_offers() {
        let mut info = lun(512, 1 << 20);
        info.write_cache = true;
        info.fua = true;
        let g = Geometry::new(&info, 262_144).unwrap();
        let iod = |op: u32, start: u64, n: u32| sys::ublksrv_io_desc {
            op_flags: op,
            start_sector: start,
            nr_sectors: n,
            ..Default::default()
        };
        let fua = sys::UBLK_IO_OP_WRITE | sys::UBLK_IO_F_FUA;
        assert_eq!(Request::parse(&g, &iod(sys::UBLK_IO_OP_READ, 8, 8), 4096), Ok(Request::Read { lba: 8, len: 4096 }));
        assert_eq!(Request::parse(&g, &iod(fua, 0, 1), 4096), Ok(Request::Write { lba: 0, len: 512, fua: true }));
        assert_eq!(Request::parse(&g, &iod(sys::UBLK_IO_OP_READ, 0, 16), 4096), Err(-libc::EINVAL), "larger than the buffer");
        assert_eq!(Request::parse(&g, &iod(sys::UBLK_IO_OP_FLUSH, u64::MAX, 0), 4096), Ok(Request::Flush));
        // Not offered by this LU: refused, never sent.
        assert_eq!(Request::parse(&g, &iod(sys::UBLK_IO_OP_DISCARD, 0, 8), 4096), Err(-libc::EOPNOTSUPP));
        assert_eq!(Request::parse(&g, &iod(sys::UBLK_IO_OP_WRITE_ZEROES, 0, 8), 4096), Err(-libc::EOPNOTSUPP));
        assert_eq!(Request::parse(&g, &iod(sys::UBLK_IO_OP_WRITE_SAME, 0, 8), 4096), Err(-libc::EOPNOTSUPP));
        // Without FUA support the flag is dropped (the kernel flushes instead).
        info.fua = false;
        let g = Geometry::new(&info, 262_144).unwrap();
        assert_eq!(Request::parse(&g, &iod(fua, 0, 1), 4096), Ok(Request::Write { lba: 0, len: 512, fua: false }));
    }

    fn id_env() -> String {
        Ident { target: "iqn.x:y".into(), portal: "127.0.0.1:3260".into(), lun: 1, wwid: String::new() }.udev_env()
    }

    #[test]
    fn udev_properties() {
        let id = Ident {
            target: "iqn.2024-01.org.lunlink:disk 1".into(),
            portal: "[::1]:3260".into(),
            lun: 3,
            wwid: "naa.6001405abc".into(),
        };
        assert_eq!(
            id.udev_env(),
            "LUNLINK_TARGET=iqn.2024-01.org.lunlink:disk_1\nLUNLINK_PORTAL=[::1]:3260\nLUNLINK_LUN=3\n\
             LUNLINK_WWID=naa.6001405abc\nLUNLINK_WWN=6001405abc\n"
        );
        let t10 = Ident { wwid: "t10.IET     00010001".into(), ..id };
        let env = t10.udev_env();
        assert!(env.contains("LUNLINK_WWID=t10.IET_____00010001\n") && !env.contains("WWN"), "{env}");
        assert_eq!(udev_file(Path::new("/run/x"), 7), Path::new("/run/x/devices/ublkb7"));
        // What a dead daemon left behind goes; nothing else is touched.
        let dir = tempfile::tempdir().unwrap();
        let stale = udev_file(dir.path(), 4_000_000);
        write_udev_file(&stale, &id_env()).unwrap();
        assert!(stale.exists());
        remove_stale_udev_files(dir.path());
        assert!(!stale.exists());
        remove_stale_udev_files(&dir.path().join("nonexistent"));
    }

    /// A restarted daemon finds identity and geometry in the JSON libublk keeps per device;
    /// other servers' devices and damaged files are not taken for ours.
    #[test]
    fn device_json_round_trip() {
        let geo = Geometry::new(&lun(4096, 1000), 262_144).unwrap();
        let data = serde_json::json!({
            "wwid": "naa.6001405abc", "target": "iqn.x:y", "portal": "127.0.0.1:3260", "lun": 3, "geometry": geo,
        });
        let file = serde_json::json!({ "target": { "tgt_type": TARGET_TYPE, "dev_size": 4_096_000 }, "target_data": data });
        let (id, g) = parse_device_json(&file.to_string()).unwrap();
        assert_eq!(g, geo);
        assert_eq!((id.target.as_str(), id.portal.as_str(), id.lun, id.wwid.as_str()), ("iqn.x:y", "127.0.0.1:3260", 3, "naa.6001405abc"));
        let other = serde_json::json!({ "target": { "tgt_type": "loop" }, "target_data": file["target_data"] });
        assert!(parse_device_json(&other.to_string()).is_none());
        let mut no_geo = file.clone();
        no_geo["target_data"]["geometry"] = serde_json::Value::Null;
        assert!(parse_device_json(&no_geo.to_string()).is_none());
        assert!(parse_device_json("{ not json").is_none());
        // Nothing to scan: no orphans, no panic.
        let dir = tempfile::tempdir().unwrap();
        assert!(scan_orphans(dir.path()).is_empty());
        std::fs::write(dir.path().join("0007.json"), file.to_string()).unwrap();
        assert!(scan_orphans(dir.path()).is_empty(), "no such device in the kernel");
        assert!(!dir.path().join("0007.json").exists(), "the JSON of a device that is gone is removed");
    }

    #[test]
    fn mountinfo_lookup() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  40 22 259:1 / /mnt/my\\040disk rw,relatime - ext4 /dev/ublkb0p1 rw\n\
                  41 22 259:0 / /mnt rw,relatime - ext4 /dev/ublkb0 rw\n";
        assert_eq!(mounted_at(mi, "259:0").as_deref(), Some("/mnt"));
        assert_eq!(mounted_at(mi, "259:1").as_deref(), Some("/mnt/my disk"));
        assert_eq!(mounted_at(mi, "259:2"), None);
        assert_eq!(mounted_at("garbage\n\n1 2", "259:0"), None);
    }

    #[test]
    fn availability_needs_the_control_device() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ublk-control");
        assert_eq!(availability_at(&missing), Err(DeviceError::DriverNotLoaded));
        assert!(DeviceError::DriverNotLoaded.to_string().contains("ublk"));
        std::fs::write(&missing, b"").unwrap();
        assert_eq!(availability_at(&missing), Ok(()));
        let off = DeviceManager::new(DeviceConfig {
            enabled: false,
            nr_queues: 1,
            queue_depth: 8,
            runtime_dir: dir.path().into(),
            recoverable: false,
            policy: Policy::default(),
            timers: Timers::default(),
        });
        assert_eq!(off.availability(), Err(DeviceError::Disabled));
    }

    /// Against a real tgtd: the LU's geometry comes from the engine's probe, and attaching gives
    /// a device where ublk exists or the reason where it does not (this host's kernel has no
    /// ublk; the VM scenarios tests/vm/scenarios/ublk-*.sh cover devices end to end).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attach_on_a_real_target() {
        const T: Duration = Duration::from_secs(60);
        let t = lunlink_tests::Tgtd::start();
        t.add_target(1, "iqn.2024-01.test:device").unwrap();
        t.add_lun_file(1, 1, 8 << 20).unwrap();
        t.bind_all(1).unwrap();
        let cfg = lunlink_engine::SessionConfig {
            initiator_name: "iqn.2024-01.org.lunlink:device-test".into(),
            initiator_alias: None,
            target_name: "iqn.2024-01.test:device".into(),
            portal: t.portal().parse().unwrap(),
            auth: lunlink_engine::Auth::None,
            offer: lunlink_engine::Offer::default(),
            isid: [0x80, 0x12, 0x34, 0x56, 0x78, rand::random()],
            queue_depth: 32,
            timeouts: lunlink_engine::Timeouts::default(),
        };
        let s = tokio::time::timeout(T, Session::login(cfg)).await.unwrap().unwrap();
        let info = tokio::time::timeout(T, s.probe_lun(1)).await.unwrap().unwrap();
        let g = Geometry::new(&info, s.info().params.max_burst_length).unwrap();
        assert_eq!(g.blocks * u64::from(g.block_size), 8 << 20);
        assert_eq!(g.io_buf_bytes, s.info().params.max_burst_length.min(1 << 20));
        assert!(info.wwid.starts_with("naa."), "{}", info.wwid);

        let dir = tempfile::tempdir().unwrap();
        let m = DeviceManager::new(DeviceConfig {
            enabled: true,
            nr_queues: 1,
            queue_depth: 16,
            runtime_dir: dir.path().into(),
            recoverable: false,
            policy: Policy::default(),
            timers: Timers::default(),
        });
        let r = tokio::time::timeout(T, m.attach(7, &s, &info)).await.unwrap();
        if Path::new(CONTROL).exists() {
            let path = r.unwrap();
            assert!(Path::new(&path).exists(), "{path}");
            assert_eq!(m.device_of(7).as_deref(), Some(path.as_str()));
            tokio::time::timeout(T, m.check_in_use(&[7])).await.unwrap().unwrap();
            tokio::time::timeout(T, m.detach(7)).await.unwrap();
            assert!(!Path::new(&path).exists(), "{path} is still there");
        } else {
            assert_eq!(r, Err(DeviceError::DriverNotLoaded));
            assert_eq!(m.device_of(7), None);
        }
        // Nothing attached (any more): nothing can be in use, detaching again is harmless.
        tokio::time::timeout(T, m.check_in_use(&[7])).await.unwrap().unwrap();
        m.detach(7).await;
        s.logout().await.unwrap();
    }

    /// Who has a device open is named in the InUse message: any other process with it among
    /// its open files.
    #[test]
    fn lvm_names_split_at_a_single_dash() {
        assert_eq!(lvm_volume_group("vg0-data").as_deref(), Some("vg0"));
        assert_eq!(lvm_volume_group("my--vg-lv--1").as_deref(), Some("my-vg"));
        assert_eq!(lvm_volume_group("crypt1"), None);
    }

    #[test]
    fn opener_names_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("disk");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(opener(&f), None);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&f).unwrap())
            .spawn()
            .unwrap();
        let want = format!("sleep (pid {})", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut got = opener(&f);
        while got.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            got = opener(&f);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(got, Some(want));
    }

    /// The eventfd hand-off: a wake from another thread is seen as a readable eventfd, repeated
    /// wakes before the queue thread drains are written once, and wakes after a drain again.
    #[test]
    fn queue_wake_signals_across_threads() {
        let w = Arc::new(QueueWake::new().unwrap());
        let readable = |w: &QueueWake| {
            let mut p = libc::pollfd { fd: w.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!readable(&w));
        let tw = Arc::new(TagWaker { task: Mutex::new(None), queue: w.clone() });
        let waker = Waker::from(tw.clone());
        std::thread::spawn(move || {
            waker.wake_by_ref();
            waker.wake_by_ref();
        })
        .join()
        .unwrap();
        assert!(readable(&w));
        w.drain();
        assert!(!readable(&w), "one drain takes every coalesced wake");
        Waker::from(tw).wake();
        assert!(readable(&w), "a wake after the drain is signalled again");
    }
}
