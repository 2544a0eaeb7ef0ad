//! Block devices for logical units, through the kernel's ublk driver (`/dev/ublkbN`): the
//! device layer's API ([`DeviceManager`]: make, take over, remove a device, say whether one is
//! in use) and its configuration. Every libublk call of the daemon lives under this module;
//! the rest of the daemon hands it engine types ([`Session`], [`LunInfo`]) and gets plain data
//! back (device paths, errors).
//!
//! A device belongs to a logical unit, identified by its WWID (VPD 0x83), and serves IO over
//! the LU's paths through the multipath layer (`lunlink_multipath`), which picks the path,
//! splits path from target errors and queues IO while no path is usable.
//!
//! - [`geometry`]: block sizes, limits, discard and write zeroes of a device, from the LU.
//! - [`identity`]: udev identity files and the device JSON that lets a restarted daemon take
//!   its predecessor's devices over.
//! - [`ublk`]: the libublk threads (a control thread per device, a thread per queue).
//! - [`request`]: one ublk request as LU commands.
//! - [`usage`]: what holds a device (mounts, device-mapper, MD, swap).

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

mod geometry;
mod identity;
mod request;
mod ublk;
mod usage;

use geometry::*;
use identity::*;
use request::*;
use ublk::*;
use usage::*;

pub use identity::{by_id, by_path};

/// How long the IO of a device's start (the kernel's partition scan) waits for a usable path.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

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
        // The kernel reads the partition table while the device starts, and the start waits
        // for it: with no path that may carry IO yet (ALUA standby, another portal still
        // logging in) that read waits a few seconds, not the whole no-path timeout.
        lu.mp.cap_waiting(Some(START_WAIT));
        let started = start_device(&self.inner.cfg, lu.clone(), ident, None).await;
        lu.mp.cap_waiting(None);
        let started = started?;
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
