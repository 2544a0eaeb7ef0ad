const cockpit = window.cockpit;
const _ = cockpit.gettext;

/// Bytes in binary units, e.g. "64 MiB", "1 TiB".
export function formatBytes(n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    const s = v >= 100 || i === 0 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
    return `${s} ${units[i]}`;
}

/// A variant's value: cockpit delivers a{sv} entries as {t, v}.
export function unvariant(x) {
    if (x && typeof x === "object" && "t" in x && "v" in x) return x.v;
    return x;
}

export function variantText(x) {
    const v = unvariant(x);
    if (Array.isArray(v)) return v.join(", ");
    if (typeof v === "boolean") return v ? _("Yes") : _("No");
    if (v === undefined || v === null || v === "") return "—";
    return String(v);
}

/// "host:port" from what a person typed: IPv6 addresses go in brackets.
export function portalOf(host, port) {
    let h = host.trim();
    if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
    const p = String(port).trim() || "3260";
    return h.includes(":") ? `[${h}]:${p}` : `${h}:${p}`;
}

export function validHost(host) {
    const h = host.trim();
    if (!h) return _("Enter a host name or an IP address");
    if (/\s/.test(h)) return _("A host name has no spaces");
    return null;
}

export function validPort(port) {
    const s = String(port).trim();
    if (s === "") return null;
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) return _("A port is a number from 1 to 65535");
    return null;
}

export const STATE_WORDS = {
    "logging-in": _("Logging in"),
    "logged-in": _("Logged in"),
    reconnecting: _("Reconnecting"),
    failed: _("Failed, reconnecting"),
    "logging-out": _("Logging out"),
};

export const STATE_COLOR = {
    "logging-in": "blue",
    "logged-in": "green",
    reconnecting: "orange",
    failed: "red",
    "logging-out": "blue",
};

/// Words for one entry of Lun.UsedBy. Each entry is (device, kind, what), e.g.
/// ("/dev/ublkb0p1", "mount", "/mnt"); other shapes are shown as they come.
export function usedByText(entry) {
    if (typeof entry === "string") return entry;
    if (!Array.isArray(entry)) return String(entry);
    const [dev, kind, what] = entry;
    switch (kind) {
    case "mount": return cockpit.format(_("$0 mounted on $1"), dev, what);
    case "swap": return cockpit.format(_("$0 used as swap"), dev);
    case "lvm": return cockpit.format(_("$0 in LVM volume group $1"), dev, what);
    case "dm": return cockpit.format(_("$0 held by device-mapper $1"), dev, what);
    case "md": return cockpit.format(_("$0 in RAID $1"), dev, what);
    case "open": return cockpit.format(_("$0 opened exclusively by $1"), dev, what);
    default: return entry.filter(Boolean).join(" ");
    }
}
