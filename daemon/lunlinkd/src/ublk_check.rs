//! Why this host cannot make ublk block devices, in one line a person can act on: the module
//! is there but not loaded (`modprobe ublk_drv`), or the running kernel was built without it
//! (which kernel has it; on Debian 12 the 6.12 kernel from bookworm-security).
//!
//! Only std: lunlinkctl includes this file too (`#[path]`), for `lunlinkctl status`.

use std::path::{Path, PathBuf};

/// The ublk control device; it exists once `ublk_drv` is loaded.
pub const CONTROL: &str = "/dev/ublk-control";

/// What the host's files say about ublk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ublk {
    /// /dev/ublk-control exists.
    Available,
    /// The driver is loaded (or built in) but /dev/ublk-control is missing.
    NoControlNode,
    /// The module is installed for the running kernel but not loaded.
    NotLoaded,
    /// The running kernel has no ublk: not built in, no module, or CONFIG_BLK_DEV_UBLK unset.
    NotInKernel { release: String, debian12: bool },
    /// Nothing tells: no /lib/modules/<release> (a container?) and no kernel config.
    Unknown { release: String },
}

/// Where to look; the real host is [`Host::real`].
#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
}

impl Host {
    pub fn real() -> Host {
        Host { root: PathBuf::from("/") }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    /// What the host's files say about ublk.
    pub fn ublk(&self) -> Ublk {
        if self.path(CONTROL).exists() {
            return Ublk::Available;
        }
        if self.path("/sys/module/ublk_drv").exists() {
            return Ublk::NoControlNode;
        }
        let release = self.read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
        let moddir = format!("/lib/modules/{release}");
        let lists = |name: &str| self.read(&format!("{moddir}/{name}")).map(|s| s.contains("/ublk_drv.ko"));
        if lists("modules.builtin") == Some(true) {
            return Ublk::NoControlNode;
        }
        let dep = lists("modules.dep");
        if dep == Some(true) {
            return Ublk::NotLoaded;
        }
        let config = self.read(&format!("/boot/config-{release}"));
        let configured = config.as_deref().map(|c| {
            c.lines().any(|l| l == "CONFIG_BLK_DEV_UBLK=m" || l == "CONFIG_BLK_DEV_UBLK=y")
        });
        let debian12 = self
            .read("/etc/os-release")
            .is_some_and(|s| s.lines().any(|l| l == "ID=debian") && s.lines().any(|l| l == "VERSION_ID=\"12\""));
        match (configured, dep) {
            (Some(true), _) => Ublk::NotLoaded, // configured, modules.dep not readable: try modprobe
            (Some(false), _) | (None, Some(_)) => Ublk::NotInKernel { release, debian12 },
            (None, None) => Ublk::Unknown { release },
        }
    }
}

impl Ublk {
    /// One line for DeviceError and `lunlinkctl status`; None when devices can be made.
    pub fn why_not(&self) -> Option<String> {
        Some(match self {
            Ublk::Available => return None,
            Ublk::NoControlNode => {
                format!("ublk_drv is loaded but {CONTROL} is missing: is devtmpfs mounted on /dev?")
            }
            Ublk::NotLoaded => format!(
                "ublk_drv is not loaded (no {CONTROL}): load it with 'modprobe ublk_drv' \
                 (lunlinkd.service does so at start through modprobe@ublk_drv.service)"
            ),
            Ublk::NotInKernel { release, debian12: true } => format!(
                "kernel {release} has no ublk driver (CONFIG_BLK_DEV_UBLK is not set, as in all of \
                 Debian 12's 6.1 kernels): install and boot Debian 12's 6.12 kernel from \
                 bookworm-security, e.g. 'apt-get install linux-image-6.12.*+deb12-amd64' \
                 (apt-cache search '^linux-image-6.12' lists them)"
            ),
            Ublk::NotInKernel { release, debian12: false } => format!(
                "kernel {release} has no ublk driver (CONFIG_BLK_DEV_UBLK is not set): boot a \
                 Linux 6.0 or later kernel built with CONFIG_BLK_DEV_UBLK=m (module ublk_drv)"
            ),
            Ublk::Unknown { release } => format!(
                "no {CONTROL} and no module list for kernel {release} (in a container?): the host \
                 must run 'modprobe ublk_drv' and pass /dev/ublk-control and /dev/ublkc* in"
            ),
        })
    }
}

/// Why the real host cannot make ublk devices, or None when it can.
pub fn why_unavailable() -> Option<String> {
    Host::real().ublk().why_not()
}

/// [`why_unavailable`] as text that is never empty (for an error whose cause is known to be
/// a missing control device).
pub fn diagnosis() -> String {
    why_unavailable().unwrap_or_else(|| format!("{CONTROL} could not be used"))
}

#[allow(dead_code)] // used by the tests and by callers that probe another root
pub fn in_root(root: &Path) -> Ublk {
    Host { root: root.to_owned() }.ublk()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(files: &[(&str, &str)]) -> (tempfile::TempDir, Ublk) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (p, content) in files {
            let path = dir.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
        }
        let u = in_root(dir.path());
        (dir, u)
    }

    const REL: (&str, &str) = ("/proc/sys/kernel/osrelease", "6.1.0-40-amd64\n");
    const DEBIAN12: (&str, &str) = ("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n");

    #[test]
    fn available_when_the_control_node_exists() {
        let (_d, u) = host(&[("/dev/ublk-control", "")]);
        assert_eq!(u, Ublk::Available);
        assert_eq!(u.why_not(), None);
    }

    #[test]
    fn module_installed_but_not_loaded() {
        let (_d, u) = host(&[REL, ("/lib/modules/6.1.0-40-amd64/modules.dep", "kernel/drivers/block/ublk_drv.ko.xz:\n")]);
        assert_eq!(u, Ublk::NotLoaded);
        assert!(u.why_not().expect("why").contains("modprobe ublk_drv"));
    }

    #[test]
    fn debian12_kernel_without_ublk_names_the_6_12_package() {
        let (_d, u) = host(&[
            REL,
            DEBIAN12,
            ("/lib/modules/6.1.0-40-amd64/modules.dep", "kernel/drivers/block/nbd.ko.xz:\n"),
            ("/lib/modules/6.1.0-40-amd64/modules.builtin", "kernel/fs/ext4/ext4.ko\n"),
            ("/boot/config-6.1.0-40-amd64", "# CONFIG_BLK_DEV_UBLK is not set\n"),
        ]);
        assert_eq!(u, Ublk::NotInKernel { release: "6.1.0-40-amd64".into(), debian12: true });
        let why = u.why_not().expect("why");
        assert!(why.contains("kernel 6.1.0-40-amd64 has no ublk") && why.contains("linux-image-6.12"), "{why}");
        assert!(!why.contains('\n'));
    }

    #[test]
    fn other_distribution_without_ublk() {
        let (_d, u) = host(&[REL, ("/boot/config-6.1.0-40-amd64", "# CONFIG_BLK_DEV_UBLK is not set\n")]);
        assert_eq!(u, Ublk::NotInKernel { release: "6.1.0-40-amd64".into(), debian12: false });
        assert!(u.why_not().expect("why").contains("CONFIG_BLK_DEV_UBLK=m"));
    }

    #[test]
    fn loaded_or_built_in_without_the_node() {
        let (_d, u) = host(&[REL, ("/sys/module/ublk_drv/refcnt", "0\n")]);
        assert_eq!(u, Ublk::NoControlNode);
        let (_d, u) = host(&[REL, ("/lib/modules/6.1.0-40-amd64/modules.builtin", "kernel/drivers/block/ublk_drv.ko\n")]);
        assert_eq!(u, Ublk::NoControlNode);
    }

    #[test]
    fn nothing_known_in_a_container() {
        let (_d, u) = host(&[REL]);
        assert_eq!(u, Ublk::Unknown { release: "6.1.0-40-amd64".into() });
        assert!(u.why_not().expect("why").contains("container"));
    }
}
