//! What a device is, kept outside the daemon: the udev identity file per device (by-path and
//! by-id names for 90-lunlink.rules) and the device's JSON in libublk's run directory, from which
//! a restarted daemon finds the devices of its predecessor (orphans) and takes them over.

use super::*;

/// Where a device's LU lives, for the udev rule and the device's JSON.
pub(super) struct Ident {
    pub(super) target: String,
    pub(super) portal: String,
    pub(super) lun: u16,
    pub(super) wwid: String,
}

/// Characters kept in udev values and link names; the others become '_'.
pub(super) fn udev_safe(s: &str) -> String {
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
    pub(super) fn udev_env(&self) -> String {
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

pub(super) fn udev_file(runtime_dir: &Path, dev_id: u32) -> PathBuf {
    runtime_dir.join("devices").join(format!("ublkb{dev_id}"))
}

/// Files left by a daemon that died without removing its devices: the kernel removed the
/// devices then, and a new device with the same number must not inherit the old identity.
/// Files of devices that still exist stay (a device that survived, for recovery).
pub(super) fn remove_stale_udev_files(runtime_dir: &Path) {
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
pub(super) fn parse_device_json(text: &str) -> Option<(Ident, Geometry)> {
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
pub(super) fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The devices in `run_dir` (libublk's JSON files) that a previous lunlinkd made and left
/// behind: they still exist in the kernel and their server is gone. JSON files of ours whose
/// device no longer exists are removed. Blocking; runs on a thread of its own, because
/// libublk's control commands use a per-thread ring.
pub(super) fn find_orphans(run_dir: &Path) -> HashMap<String, Orphan> {
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

pub(super) fn scan_orphans(run_dir: &Path) -> HashMap<String, Orphan> {
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

pub(super) fn write_udev_file(path: &Path, content: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}
