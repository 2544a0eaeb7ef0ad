//! Is a device in use? Mounts of it or its partitions (/proc/self/mountinfo), device-mapper and
//! MD holders (/sys/block/*/holders), swap, and exclusive openers, in words for InUse errors and
//! Lun.UsedBy.

use super::*;

// ---- is a device in use? ------------------------------------------------------------------------

/// Undoes the octal escapes of /proc/*/mountinfo (`\040` for a space, ...).
pub(super) fn unescape_mount(s: &str) -> String {
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
pub(super) fn mounts_of(mountinfo: &str, majmin: &str) -> Vec<String> {
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
pub(super) fn mounted_at(mountinfo: &str, majmin: &str) -> Option<String> {
    mounts_of(mountinfo, majmin).into_iter().next()
}

pub(super) fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// The disk and its partitions: (name, "major:minor").
pub(super) fn disk_and_partitions(name: &str) -> Vec<(String, String)> {
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
pub(super) fn holders(sys_dir: &Path) -> Vec<String> {
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
pub(super) fn lvm_volume_group(dm_name: &str) -> Option<String> {
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
pub(super) fn opener(dev: &Path) -> Option<String> {
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
pub(super) fn usages(bdev: &Path, probe_exclusive: bool) -> Vec<String> {
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
