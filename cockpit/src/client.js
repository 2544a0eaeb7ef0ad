// The page's only link to the system: org.lunlink.Initiator1 on the system bus, through
// cockpit.dbus with superuser "try" (calls go as root when administrative access is on). Objects
// are kept current by ObjectManager signals and PropertiesChanged (cockpit's proxies watch the
// namespace): the page never polls. The Session counters are not signalled by the daemon; the
// details view reads them on demand.
import { useEffect, useState, useSyncExternalStore } from "react";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

export const NAME = "org.lunlink.Initiator1";
export const ROOT = "/org/lunlink/Initiator1";
export const IFACE = {
    manager: NAME + ".Manager",
    node: NAME + ".Node",
    session: NAME + ".Session",
    lun: NAME + ".Lun",
};

const EMPTY = {
    running: null, // null: not known yet; false: nobody owns the name
    ready: false,
    problem: null,
    manager: null,
    managerMethods: new Set(),
    nodes: [],
    sessions: [],
    luns: [],
};

/// Plain code-point order: names and portals are ASCII, and locale order skips punctuation.
function cmp(a, b) {
    const x = a || "";
    const y = b || "";
    return x < y ? -1 : x > y ? 1 : 0;
}

function plain(proxy) {
    return { path: proxy.path, ...proxy.data };
}

class Store {
    constructor() {
        this.snapshot = EMPTY;
        this.listeners = new Set();
        this.scheduled = false;
        this.generation = 0;
        this.retries = 0;
        this.trace = [];
        this.connect();
    }

    connect() {
        const gen = ++this.generation;
        const client = cockpit.dbus(NAME, { bus: "system", superuser: "try" });
        this.client = client;
        this.owner = undefined;
        const live = () => gen === this.generation;
        const changed = () => live() && this.schedule();

        client.addEventListener("owner", (_ev, owner) => {
            if (!live()) return;
            const before = this.owner;
            this.owner = owner;
            this.note(`owner ${before} -> ${owner}`);
            if (owner && before === null) {
                // lunlinkd came back: start over, so every object is read afresh.
                this.reconnect();
                return;
            }
            this.schedule();
        });
        client.addEventListener("close", (_ev, options) => {
            if (!live()) return;
            this.note(`close ${JSON.stringify(options)}`);
            this.problem = options && options.problem ? options : null;
            // The bridge closed the channel (e.g. while Cockpit's superuser bridge started):
            // open it again a few times before giving up.
            this.retry();
            this.schedule();
        });

        // The Manager first, then the objects below it: watched together, the bridge sometimes
        // answered the namespace watch (ObjectManager, which leaves out the root object itself)
        // for the root path too, and the Manager's properties never came.
        this.manager = client.proxy(IFACE.manager, ROOT);
        this.manager.addEventListener("changed", changed);
        this.nodes = this.sessions = this.luns = {};
        const children = () => {
            if (!live()) return Promise.reject(new Error("replaced"));
            this.nodes = client.proxies(IFACE.node, ROOT);
            this.sessions = client.proxies(IFACE.session, ROOT);
            this.luns = client.proxies(IFACE.lun, ROOT);
            for (const set of [this.nodes, this.sessions, this.luns]) {
                set.addEventListener("added", changed);
                set.addEventListener("changed", changed);
                set.addEventListener("removed", changed);
            }
            return Promise.all([this.nodes.wait(), this.sessions.wait(), this.luns.wait()]);
        };
        const managerRead = new Promise(resolve => this.manager.wait().then(() => resolve(true), () => resolve(false)));
        managerRead
                .then(ok => children().then(() => ok, () => false))
                .then(ok => {
                    if (!live()) return;
                    this.loaded = true;
                    this.note(`loaded${ok ? "" : " (incomplete)"}, manager ${this.manager.valid ? "valid" : "missing"}`);
                    if (!ok && this.owner !== null && !this.manager.valid) {
                        // The name has an owner but its Manager did not come: start over a few
                        // times, then say so.
                        this.retry();
                    } else if (ok) {
                        this.retries = 0;
                    }
                    this.schedule();
                });
        this.problem = null;
        this.loaded = false;
        this.schedule();
    }

    /// Starts over after a growing pause, at most 5 times in a row; then the problem stays shown.
    retry() {
        const gen = this.generation;
        if (this.retries >= 5) {
            if (!this.problem) this.problem = { problem: "not-found", message: _("lunlinkd does not answer on the system bus") };
            return;
        }
        this.retries++;
        window.setTimeout(() => {
            if (gen === this.generation && !this.manager.valid) this.reconnect();
        }, 500 * this.retries);
    }

    /// A short history of what the bus said, for a look from the browser console.
    note(what) {
        this.trace.push(`${new Date().toISOString()} ${what}`);
        if (this.trace.length > 40) this.trace.shift();
    }

    reconnect() {
        this.note("reconnect");
        const old = this.client;
        this.connect();
        try {
            old.close();
        } catch {
            // already closed
        }
    }

    schedule() {
        if (this.scheduled) return;
        this.scheduled = true;
        queueMicrotask(() => {
            this.scheduled = false;
            this.rebuild();
        });
    }

    rebuild() {
        const m = this.manager;
        const methods = new Set();
        if (m && m.valid) {
            // Methods appear on a cockpit proxy once the interface's introspection data is known:
            // they tell which API additions this lunlinkd has.
            for (const name of ["SetInitiatorName", "LoginAllWithResults", "Discover", "Login", "Logout", "SetDefaultAuth"]) {
                if (typeof m[name] === "function") methods.add(name);
            }
        }
        // Whether lunlinkd runs: the bus says who owns the name; until the Manager's properties
        // have arrived it is not known yet (null), unless nobody owns the name.
        // (A proxy keeps its last values when the owner goes: the owner decides first.)
        let running = null;
        if (this.owner === null) running = false;
        else if (m && m.valid) running = true;
        const list = set => Object.keys(set)
                .map(k => set[k])
                .filter(p => p && p.valid)
                .map(plain)
                .sort((a, b) => cmp(a.Target, b.Target) || cmp(a.Portal, b.Portal) || cmp(a.path, b.path));
        this.snapshot = {
            running,
            // Once shown, the views stay (with what a person typed) while a reconnect reads
            // the objects again.
            ready: this.loaded || this.shown,
            problem: this.problem,
            manager: m && m.valid ? { path: ROOT, ...m.data } : null,
            managerMethods: methods,
            nodes: list(this.nodes),
            sessions: list(this.sessions),
            luns: list(this.luns),
        };
        if (this.loaded) this.shown = true;
        for (const l of this.listeners) l();
    }

    subscribe = listener => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    };

    getSnapshot = () => this.snapshot;

    /// A method call; resolves with the out arguments as an array.
    call(path, iface, method, args) {
        return new Promise((resolve, reject) => {
            // Logins and discovery can take as long as lunlinkd's own timeouts (several
            // connections, each with its login timeout): do not give up before the daemon does.
            // "i": polkit may ask the person (Cockpit answers as their agent); lunlinkd allows
            // interactive authorization only when a call carries this flag.
            this.client.call(path, iface, method, args, { timeout: 300000, flags: "i" }).then(resolve, reject);
        });
    }

    manager_call(method, args) {
        return this.call(ROOT, IFACE.manager, method, args);
    }

    /// Lun.UsedBy of each LUN that has it, read now: lunlinkd computes it on demand and does not
    /// signal it. Resolves with a Map path -> list (LUNs whose read failed are left out).
    readUsedBy(luns) {
        const wanted = luns.filter(l => l.UsedBy !== undefined);
        return Promise.all(wanted.map(l =>
            this.call(l.path, "org.freedesktop.DBus.Properties", "Get", [IFACE.lun, "UsedBy"])
                    .then(([v]) => [l.path, v && typeof v === "object" && "v" in v ? v.v : v], () => null)
        )).then(pairs => new Map(pairs.filter(Boolean)));
    }

    /// Every property of one object, read now (for the unsignalled Session counters).
    getAll(path, iface) {
        return this.call(path, "org.freedesktop.DBus.Properties", "GetAll", [iface]).then(([props]) => {
            const out = {};
            for (const k of Object.keys(props)) out[k] = props[k] && typeof props[k] === "object" && "v" in props[k] ? props[k].v : props[k];
            return out;
        });
    }
}

export const store = new Store();
// For a look from the browser console.
window.lunlink = { store };

export function useStore() {
    return useSyncExternalStore(store.subscribe, store.getSnapshot);
}

/// An options dictionary (a{sv}) from a plain object; empty strings and undefined are left out.
export function options(obj) {
    const out = {};
    for (const [k, v] of Object.entries(obj)) {
        if (v === undefined || v === null || v === "") continue;
        if (typeof v === "boolean") out[k] = cockpit.variant("b", v);
        else if (Array.isArray(v)) out[k] = cockpit.variant("as", v);
        else if (typeof v === "number") out[k] = cockpit.variant("u", v);
        else out[k] = cockpit.variant("s", String(v));
    }
    return out;
}

/// Whether changes are allowed: null while unknown, then true or false. Cockpit reloads the page
/// when administrative access is switched.
let permission = null;
export function usePermission() {
    if (!permission) permission = cockpit.permission({ admin: true });
    return useSyncExternalStore(
        cb => {
            permission.addEventListener("changed", cb);
            return () => permission.removeEventListener("changed", cb);
        },
        () => permission.allowed,
    );
}

/// Object lookups for a snapshot.
export function indexBy(list) {
    const m = new Map();
    for (const o of list) m.set(o.path, o);
    return m;
}

/// Lun.UsedBy kept fresh while `active`: read when the view shows, when LUNs or their devices
/// change, and when `token` changes (e.g. after a refused disconnect). Returns the LUNs with it.
export function useFreshUsedBy(luns, active, token) {
    const [fresh, setFresh] = useState(() => new Map());
    const key = luns.filter(l => l.UsedBy !== undefined).map(l => `${l.path}=${l.Device}`).join(" ");
    useEffect(() => {
        if (!active || !key) return undefined;
        let current = true;
        store.readUsedBy(luns).then(m => { if (current) setFresh(m) });
        return () => { current = false };
        // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [active, key, token]);
    return luns.map(l => (fresh.has(l.path) ? { ...l, UsedBy: fresh.get(l.path) } : l));
}

/// The LUNs of a session, in LUN order.
export function sessionLuns(snap, session) {
    const luns = snap.luns.filter(l => l.Session === session.path);
    return luns.sort((a, b) => (a.Lun ?? 0) - (b.Lun ?? 0));
}
