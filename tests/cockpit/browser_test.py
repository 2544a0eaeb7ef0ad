#!/usr/bin/python3
"""Browser test of the Cockpit page (cockpit/): headless Chromium over WebDriver, against
cockpit-ws, lunlinkd and a real tgtd with a plain, a CHAP and a mutual-CHAP target, all on a
private bus and loopback. Run by tests/cockpit/run (which builds the page first).

Each scenario saves a screenshot under target/cockpit-screenshots/. Prints "N passed, N failed".
"""

import json
import os
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from services import Services, http_get, refused_port  # noqa: E402
from webdriver import Browser, wait_until  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHOTS = os.path.join(REPO, "target", "cockpit-screenshots")
DIST = os.path.join(REPO, "cockpit", "dist")

PLAIN = "iqn.2024-01.test.cockpit:plain"
CHAP = "iqn.2024-01.test.cockpit:chap"
MUTUAL = "iqn.2024-01.test.cockpit:mutual"
EXTRA = "iqn.2024-01.test.cockpit:extra"
INITIATOR = "iqn.2024-01.test.cockpit:initiator"
CHAP_USER, CHAP_SECRET = "cockpituser", "chapsecret1234"
MUTUAL_USER, MUTUAL_SECRET = "mutualuser", "mutualsecret12"
TARGET_USER, TARGET_SECRET = "mutualtarget", "targetsecret99"
SECRETS = [CHAP_SECRET, MUTUAL_SECRET, TARGET_SECRET]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1200", "--force-device-scale-factor=1",
]


class PageTest:
    def __init__(self, svc, browser):
        self.svc = svc
        self.b = browser
        self.page = f"{svc.cockpit}/cockpit/@localhost/lunlink/index.html"
        self.shots = 0  # screenshots are numbered in the order taken

    def shot(self, name, top=True):
        if top:
            # Clicks scroll the page; a screenshot shows it from its start.
            self.b.js("document.querySelectorAll('.pf-v5-c-page__main').forEach(m => m.scrollTo(0, 0)); window.scrollTo(0, 0);")
        # Text in a font still loading is invisible: wait for the fonts (in the top document
        # and in the shell's page frame).
        wait_until("the page's fonts", lambda: self.b.js("""
            const docs = [document, ...[...document.querySelectorAll('iframe')].map(f => f.contentDocument).filter(Boolean)];
            return docs.every(d => d.fonts.status === 'loaded');"""), 10)
        self.shots += 1
        path = os.path.join(SHOTS, f"{self.shots:02d}-{name}.png")
        self.b.screenshot(path)
        print(f"    screenshot {os.path.relpath(path, REPO)}")

    def open(self, view="connections"):
        self.b.go(f"{self.page}#/{view}")
        self.b.find(f"#view-{view}")

    def view(self, name):
        self.b.click(f'.lunlink-tabs a[href="#/{name}"]')
        self.b.find(f"#view-{name}")

    def session_row_text(self, target):
        return self.b.js("""
            const t = document.querySelector(`#sessions-table tbody[data-session="${arguments[0]}"]`);
            return t ? t.innerText : null;""", target)

    def result_text(self, target):
        return self.b.js("""
            const r = document.querySelector(`#targets-table tr[data-target="${arguments[0]}"] .lunlink-status`);
            return r ? r.innerText : null;""", target)

    def wait_result(self, target, needle, timeout=60):
        return wait_until(f"the result of {target} to say {needle!r}",
                          lambda: (lambda t: t if t and needle in t else None)(self.result_text(target)), timeout)

    def select_target(self, target, on=True):
        self.b.js("""
            const c = document.querySelector(`#targets-table tr[data-target="${arguments[0]}"] input[type=checkbox]`);
            if (c.checked !== arguments[1]) c.click();""", target, on)

    # --- scenarios ---------------------------------------------------------------------------

    def test_landing(self):
        self.open()
        self.b.wait_text("#initiator-name", "iqn.")
        self.b.find("#no-sessions")
        # No administrative-access warning for root, no "not running" alert.
        assert not self.b.find_all("#alert-not-running"), "lunlinkd shown as not running"
        self.shot("landing")
        if self.b.js("return window.lunlink.store.snapshot.managerMethods.has('SetInitiatorName')"):
            # No session yet, so lunlinkd takes a new name; the page shows it when signalled.
            self.b.click("#initiator-name-change")
            self.b.type("#initiator-name-input", "not a name")
            self.b.wait_text("#initiator-name-dialog", "An iSCSI name looks like")
            self.b.type("#initiator-name-input", INITIATOR + "\ue007")
            self.b.wait_text("#initiator-name", INITIATOR)
            out = self.svc.dbus_send("org.lunlink.Initiator1", "/org/lunlink/Initiator1", "org.freedesktop.DBus.Properties.Get",
                                     "string:org.lunlink.Initiator1.Manager", "string:InitiatorName").stdout
            assert INITIATOR in out, out
        else:
            print("    this lunlinkd has no SetInitiatorName: the page says how to change the name")
            self.b.wait_text("#initiator-card", "/etc/lunlink/lunlink.toml")

    def test_discover_connect_all(self):
        self.view("add")
        # Nothing listens there: the error says so beside the Discover button.
        self.b.type("#discover-host", "127.0.0.1")
        self.b.type("#discover-port", str(self.svc.unused_port))
        self.b.click("#discover")
        self.b.wait_text("#discover-error", "Cannot connect to the portal")
        # IPv6, by keyboard: Enter in the port field discovers.
        self.b.type("#discover-host", "::1")
        self.b.type("#discover-port", str(self.svc.tgt_port) + "\ue007")
        self.b.wait_text("#targets-table", f"[::1]:{self.svc.tgt_port}")
        self.b.type("#discover-host", "127.0.0.1")
        self.b.click("#discover")
        self.b.wait_text("#targets-table", f"127.0.0.1:{self.svc.tgt_port}")
        for t in (PLAIN, CHAP, MUTUAL, EXTRA):
            self.b.wait_text("#targets-table", t)
        assert f"127.0.0.1:{self.svc.tgt_port}" in self.b.text("#targets-table")
        # "All targets" selects every one; leave EXTRA for lunlinkctl later.
        self.b.js("const c = document.getElementById('select-all-targets'); if (!c.checked) c.click();")
        assert self.b.js("return [...document.querySelectorAll('#targets-table input[type=checkbox]')].every(c => c.checked)")
        self.select_target(EXTRA, False)
        self.b.click("#connect")
        self.wait_result(PLAIN, "Connected")
        for t in (CHAP, MUTUAL):
            text = self.wait_result(t, "Authentication failed")
            assert "CHAP" in text, text
        self.b.js("document.getElementById('targets-card').scrollIntoView()")
        self.shot("connect-all-chap-refused", top=False)

    def test_default_auth_write_only(self):
        self.view("authentication")
        self.b.click("#auth-session-method-chap")
        self.b.type("#auth-session-username", CHAP_USER)
        self.b.type("#auth-session-password", CHAP_SECRET)
        self.b.click("#auth-session-save")
        self.b.find("#auth-session-saved")
        self.b.wait_text("#auth-session-current .lunlink-auth-method", "CHAP")
        self.b.wait_text("#auth-session-current .lunlink-auth-username", CHAP_USER)
        assert self.b.text("#auth-session-current .lunlink-auth-secret") == "Set"
        self.check_no_secret()
        props = self.svc.manager_properties()
        assert CHAP_USER in props, props
        self.shot("default-auth")

    def check_no_secret(self):
        dom = self.b.js("""
            return document.documentElement.outerHTML + '\\n' +
                [...document.querySelectorAll('input')].map(i => i.value).join('\\n');""")
        for s in SECRETS:
            assert s not in dom, f"a secret is in the page: {s}"
        dump = self.svc.managed_objects() + self.svc.manager_properties()
        for s in SECRETS:
            assert s not in dump, f"a secret is readable on the bus: {s}"

    def test_connect_chap_targets(self):
        self.view("add")
        self.select_target(PLAIN, False)
        self.select_target(MUTUAL, False)
        self.select_target(CHAP, True)
        self.b.click("#session-auth-method-default")
        self.b.click("#connect")
        self.wait_result(CHAP, "Connected")
        # Mutual CHAP with credentials for this login, kept in the node record.
        self.select_target(CHAP, False)
        self.select_target(MUTUAL, True)
        self.b.click("#session-auth-method-mutual")
        self.b.type("#session-auth-username", MUTUAL_USER)
        self.b.type("#session-auth-password", MUTUAL_SECRET)
        self.b.type("#session-auth-reverse-username", TARGET_USER)
        self.b.type("#session-auth-reverse-password", TARGET_SECRET)
        self.b.click("#connect")
        self.wait_result(MUTUAL, "Connected")
        assert "DeviceError" not in self.result_text(MUTUAL)
        self.check_no_secret()
        self.shot("connected")

    def test_sessions_table(self):
        self.view("connections")
        for t in (PLAIN, CHAP, MUTUAL):
            text = wait_until(f"a row for {t}", lambda t=t: self.session_row_text(t), 20)
            wait_until(f"{t} logged in", lambda t=t: "Logged in" in (self.session_row_text(t) or ""), 30)
            text = self.session_row_text(t)
            assert "64 MiB" in text or "32 MiB" in text or "MiB" in text, text
            assert "IET" in text, text  # tgtd's INQUIRY vendor
            # No ublk on the host: the device column says why.
            assert "No device" in text, text
        self.shot("sessions")

    def test_ctl_login_appears(self):
        self.view("connections")
        wait_until("the plain target's session", lambda: self.session_row_text(PLAIN), 20)
        self.svc.lunlinkctl("login", EXTRA, "--portal", self.svc.portal)
        wait_until("the lunlinkctl session in the table", lambda: self.session_row_text(EXTRA), 20)
        wait_until("it is logged in", lambda: "Logged in" in (self.session_row_text(EXTRA) or ""), 30)
        # And the Add connection view marks it connected.
        self.shot("ctl-session-live")
        # And the Add connection view marks it connected.
        self.view("add")
        self.wait_result(EXTRA, "Connected")

    def test_session_details(self):
        self.open("connections")
        self.b.click(f'#sessions-table tbody[data-session="{PLAIN}"] a')
        self.b.wait_text("#session-title", PLAIN)
        self.b.wait_text("#parameters", "MaxBurstLength")
        self.b.wait_text("#timeouts", "Replacement")
        self.b.wait_text("#counters", "Commands")
        self.b.wait_text("#lun-identity", "Read-write")
        self.b.click("#counters-refresh")
        self.b.click("#session-rescan")
        wait_until("the rescan to finish", lambda: self.b.js(
            "const b = document.getElementById('session-rescan'); return b && !b.disabled;"), 40)
        assert not self.b.find_all("#session-error"), self.b.text("#session-error")
        self.shot("session-details")
        self.b.click(".pf-v5-c-breadcrumb a")
        self.b.find("#sessions-table")

    def test_disconnect_selected(self):
        self.b.click(f'#sessions-table tbody[data-session="{CHAP}"] input[type=checkbox]')
        self.b.click(f'#sessions-table tbody[data-session="{EXTRA}"] input[type=checkbox]')
        self.b.click("#disconnect-selected")
        for t in (CHAP, EXTRA):
            wait_until(f"{t} to leave the table", lambda t=t: self.session_row_text(t) is None, 30)
        assert self.session_row_text(PLAIN) and self.session_row_text(MUTUAL)
        out = self.svc.lunlinkctl("--json", "sessions")
        assert CHAP not in out and EXTRA not in out, out
        self.shot("disconnected")

    def test_select_all(self):
        self.b.js("const c = document.getElementById('select-all-sessions'); if (!c.checked) c.click();")
        n = self.b.js("return document.querySelectorAll('#sessions-table tbody input[type=checkbox]:checked').length")
        assert n == 2, n
        self.b.js("document.getElementById('select-all-sessions').click();")
        assert self.b.js("return document.querySelectorAll('#sessions-table tbody input[type=checkbox]:checked').length") == 0

    def test_in_use_flow(self):
        # The host has no ublk, so no device can be mounted here (the VM proves the daemon's
        # side): make lunlinkd's InUse refusal come from the page's own call once, to walk the
        # page through it: holders shown, "Disconnect anyway", confirmation, forced logout.
        self.b.js("""
            const store = window.lunlink.store;
            const real = store.manager_call.bind(store);
            window.__forced = [];
            store.manager_call = (method, args) => {
                if (method === 'Logout' && !('force' in args[1]))
                    return Promise.reject({ name: 'org.lunlink.Initiator1.Error.InUse',
                                            message: '/dev/ublkb0 is mounted on /mnt' });
                if (method === 'Logout') window.__forced.push(args[1].force.v);
                return real(method, args);
            };""")
        self.b.click(f'#sessions-table tbody[data-session="{MUTUAL}"] input[type=checkbox]')
        self.b.click("#disconnect-selected")
        self.b.wait_text("#inuse-alert", "/dev/ublkb0 is mounted on /mnt")
        assert self.session_row_text(MUTUAL), "refused, yet gone"
        self.b.click("#disconnect-anyway")
        self.b.wait_text("#force-dialog", "Data may be lost")
        self.shot("disconnect-anyway")
        self.b.click("#force-confirm")
        wait_until(f"{MUTUAL} to leave the table", lambda: self.session_row_text(MUTUAL) is None, 30)
        assert self.b.js("return window.__forced") == [True]
        self.b.js("delete window.lunlink.store.manager_call;")  # the prototype's again

    def test_default_auth_back_to_none(self):
        self.view("authentication")
        self.b.click("#auth-session-method-none")
        self.b.click("#auth-session-save")
        self.b.wait_text("#auth-session-current .lunlink-auth-method", "None")
        assert self.b.text("#auth-session-current .lunlink-auth-secret") == "Not set"

    def node_row(self, target):
        return f'#nodes-table tr[data-node="{target}"][data-portal="{self.svc.portal}"]'

    def node_switch(self, target):
        return self.b.js("""
            const r = document.querySelector(arguments[0] + ' input[type=checkbox]');
            return r ? r.checked : null;""", self.node_row(target))

    def test_node_startup_persisted(self):
        self.view("nodes")
        self.b.wait_text("#nodes-table", PLAIN)
        assert self.node_switch(PLAIN) is False
        self.b.click(f'{self.node_row(PLAIN)} label.pf-v5-c-switch')
        wait_until("the switch to show automatic", lambda: self.node_switch(PLAIN) is True, 20)
        out = self.svc.lunlinkctl("--json", "nodes")
        assert '"automatic"' in out, out
        # Restart the daemon: the page says it is gone, then the record comes back as it was.
        self.svc.stop_lunlinkd()
        self.b.find("#alert-not-running", timeout=30)
        self.shot("daemon-down")
        self.svc.start_lunlinkd()
        self.b.refresh()
        self.b.find("#view-nodes")
        self.b.wait_text("#nodes-table", PLAIN)
        wait_until("the node to still be automatic", lambda: self.node_switch(PLAIN) is True, 20)
        assert self.node_switch(CHAP) is False
        # lunlinkd logs in to automatic nodes at start.
        self.b.wait_text(self.node_row(PLAIN), "Logged in", timeout=60)
        self.shot("nodes-persisted")

    def test_node_settings_and_delete(self):
        # Digests through the settings dialog; the answer says when they apply.
        self.b.click(f'{self.node_row(CHAP)} button[id^="node-settings-"]')
        self.b.find("#node-header-digest")
        self.b.js("""
            const sel = document.getElementById('node-header-digest');
            const set = Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, 'value').set;
            set.call(sel, 'crc32c,none');
            sel.dispatchEvent(new Event('change', {bubbles: true}));""")
        self.b.click("#node-settings-save")
        self.b.wait_text(f'#nodes-table tr[data-node-note="{CHAP}"][data-portal="{self.svc.portal}"]', "Saved, in effect")
        # A logged-in node cannot be deleted, and the page says why.
        self.b.click(f'{self.node_row(PLAIN)} button[id^="node-delete-"]')
        self.b.click("#node-delete-confirm")
        self.b.wait_text("#node-delete-error", "disconnect its session first")
        self.shot("node-delete-refused")
        self.b.click("#node-delete-cancel")
        # Log in from the node list: the plain target through its IPv6 portal.
        v6 = f'#nodes-table tr[data-node="{PLAIN}"][data-portal="[::1]:{self.svc.tgt_port}"]'
        self.b.click(f'{v6} button[id^="node-login-"]')
        self.b.wait_text(v6, "Logged in", timeout=30)
        # The CHAP target through IPv6: its own credentials in its record, then Log in.
        chap6 = f'#nodes-table tr[data-node="{CHAP}"][data-portal="[::1]:{self.svc.tgt_port}"]'
        self.b.click(f'{chap6} button[id^="node-settings-"]')
        self.b.click("#node-auth-method-chap")
        self.b.type("#node-auth-username", CHAP_USER)
        self.b.type("#node-auth-password", CHAP_SECRET)
        self.b.click("#node-settings-save")
        self.b.wait_text(chap6, f"CHAP as {CHAP_USER}")
        self.b.click(f'{chap6} button[id^="node-login-"]')
        self.b.wait_text(chap6, "Logged in", timeout=30)
        self.check_no_secret()
        # One that is not logged in goes.
        self.b.click(f'{self.node_row(EXTRA)} button[id^="node-delete-"]')
        self.b.click("#node-delete-confirm")
        wait_until("the deleted node to leave the table", lambda: not self.b.find_all(self.node_row(EXTRA)), 20)
        # Log in to all: the CHAP node without credentials of its own fails, in its row when
        # lunlinkd says per node (LoginAllWithResults), the others log in.
        self.b.click("#login-all")
        text = self.b.wait_text("#nodes-card", " logged in", timeout=120) if self.b.js(
            "return window.lunlink.store.snapshot.managerMethods.has('LoginAllWithResults')") else None
        if text:
            self.b.wait_text(f'#nodes-table tr[data-node-note="{CHAP}"][data-portal="{self.svc.portal}"]', "Authentication failed")
        else:
            self.b.find("#login-all-result, #login-all-error", timeout=120)
        self.b.wait_text(self.node_row(MUTUAL), "Logged in", timeout=30)
        self.shot("login-all")

    def test_dark_theme(self):
        self.b.js("localStorage.setItem('shell:style', 'dark');")
        self.b.go(f"{self.page}#/connections")
        self.b.refresh()
        self.b.wait_js("the dark theme class", "return document.documentElement.classList.contains('pf-v5-theme-dark')")
        self.b.wait_text("#sessions-table", PLAIN)
        self.shot("connections-dark")
        self.view("add")
        self.b.type("#discover-host", "127.0.0.1")
        self.b.type("#discover-port", str(self.svc.tgt_port))
        self.b.click("#discover")
        self.wait_result(PLAIN, "Connected")
        self.wait_result(CHAP, "Not connected")
        self.shot("add-dark")
        # The shell's event switches at once, without a reload.
        self.b.js("window.dispatchEvent(new CustomEvent('cockpit-style', {detail: {style: 'light'}}));")
        self.b.wait_js("the light theme", "return !document.documentElement.classList.contains('pf-v5-theme-dark')")
        self.b.js("localStorage.removeItem('shell:style');")

    def test_live_state(self):
        # The target drops the connection and refuses logins for a while: the row says
        # "Reconnecting" as lunlinkd reinstates the session, and "Logged in" once it is back.
        self.svc.set_target_state(4, "offline")
        self.svc.drop_connections(4)
        wait_until(f"{EXTRA} to show Reconnecting", lambda: "Reconnecting" in (self.session_row_text(EXTRA) or "")
                   or "Failed" in (self.session_row_text(EXTRA) or ""), 30)
        self.b.js(f"""document.querySelector('#sessions-table tbody[data-session="{EXTRA}"]').scrollIntoView()""")
        self.shot("reconnecting", top=False)
        self.svc.set_target_state(4, "ready")
        wait_until(f"{EXTRA} logged in again", lambda: "Logged in" in (self.session_row_text(EXTRA) or ""), 60)

    def test_in_cockpit_shell(self):
        # The page as people meet it: in Cockpit's shell, from its menu entry.
        self.b.set_window(1280, 1200)
        self.b.go(f"{self.svc.cockpit}/system")
        self.b.click('a[href="/lunlink"]')
        self.b.frame('iframe[name="cockpit1:localhost/lunlink"]')
        self.b.wait_text("#initiator-name", "iqn.")
        for t in (PLAIN, CHAP, MUTUAL, EXTRA):
            self.b.wait_text("#sessions-table", t)
        self.b.frame(None)
        self.shot("shell-light", top=False)
        # The shell's dark style reaches the page (Cockpit keeps it in localStorage).
        self.b.js("localStorage.setItem('shell:style', 'dark');")
        self.b.refresh()
        self.b.frame('iframe[name="cockpit1:localhost/lunlink"]')
        self.b.wait_js("the page in the shell to turn dark", "return document.documentElement.classList.contains('pf-v5-theme-dark')")
        self.b.wait_text("#sessions-table", PLAIN)
        self.b.click('.lunlink-tabs a[href="#/nodes"]')
        self.b.wait_text("#nodes-table", PLAIN)
        self.b.frame(None)
        self.shot("shell-dark-nodes", top=False)
        self.b.js("localStorage.removeItem('shell:style');")
        self.b.set_window(1280, 1000)

    def test_limited_access(self):
        # A user without administrative access (cockpit-ws and its bridge as nobody) sees
        # everything and is told that changes need administrative access; lunlinkd's polkit
        # check decides about each change, and a refusal comes back in words.
        url = self.svc.start_cockpit(DIST, as_nobody=True)
        self.b.go(f"{url}/cockpit/@localhost/lunlink/index.html#/connections")
        self.b.find("#alert-limited-access")
        self.b.wait_text("#initiator-name", "iqn.")
        self.b.wait_text("#sessions-table", PLAIN)
        self.shot("limited-access")
        self.view("authentication")
        self.b.click("#auth-discovery-method-none")
        self.b.click("#auth-discovery-save")
        outcome = wait_until("the change to be refused or done", lambda: self.b.js("""
            const e = document.getElementById('auth-discovery-error');
            if (e) return 'refused: ' + e.innerText;
            return document.getElementById('auth-discovery-saved') ? 'saved' : null;"""), 30)
        # Without polkitd on the test's bus lunlinkd lets only root change anything.
        assert outcome.startswith("refused") and "Not permitted" in outcome, outcome
        self.b.js("document.getElementById('auth-discovery').scrollIntoView()")
        self.shot("limited-access-change", top=False)

    def test_no_csp_violation(self):
        trace = self.b.js("return window.lunlink.store.trace") or []
        print(f"    the page's D-Bus trace since the last load: {len(trace)} entries, "
              f"{sum('reconnect' in t for t in trace)} reconnects")
        bad = [e for e in self.b.log()
               if "Content Security Policy" in e.get("message", "") or
               (e.get("level") == "SEVERE" and "favicon" not in e.get("message", ""))]
        assert not bad, "browser console errors:\n" + "\n".join(e["message"] for e in bad)


def main():
    for tool in ("chromium", "chromedriver", "tgtd", "tgtadm", "dbus-daemon", "dbus-send"):
        if not shutil.which(tool) and not shutil.which(tool, path="/usr/sbin:/sbin"):
            print(f"browser_test: {tool} is missing (run scripts/install-deps)", file=sys.stderr)
            return 1
    for path in ("/usr/lib/cockpit/cockpit-ws", os.path.join(DIST, "index.js"),
                 os.path.join(REPO, "target/release/lunlinkd"), os.path.join(REPO, "target/release/lunlinkctl")):
        if not os.path.exists(path):
            print(f"browser_test: {path} is missing", file=sys.stderr)
            return 1
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="lunlink-cockpit-")
    started = time.monotonic()
    svc = Services(REPO, tmp, print)
    browser = None
    passed, failed = 0, 0
    try:
        svc.start_bus()
        svc.start_tgtd([
            (1, PLAIN, 64, None, None),
            (2, CHAP, 32, (CHAP_USER, CHAP_SECRET), None),
            (3, MUTUAL, 32, (MUTUAL_USER, MUTUAL_SECRET), (TARGET_USER, TARGET_SECRET)),
            (4, EXTRA, 16, None, None),
        ])
        svc.start_lunlinkd()
        svc.unused_port, refusing = refused_port()  # kept open to the end: the port stays refused
        manifests = json.loads(http_get(f"{svc.start_cockpit(DIST)}/cockpit/@localhost/manifests.json"))
        label = manifests["lunlink"]["menu"]["index"]["label"]
        assert label == "iSCSI Initiator", label
        driver = svc.start_chromedriver()
        profile = os.path.join(tmp, "chromium-profile")
        browser = Browser(driver, shutil.which("chromium"), CHROMIUM_ARGS + [f"--user-data-dir={profile}"])
        print(f"browser_test: services up in {time.monotonic() - started:.1f} s (tmp {tmp})")
        t = PageTest(svc, browser)
        scenarios = [
            t.test_landing, t.test_discover_connect_all, t.test_ctl_login_appears, t.test_default_auth_write_only,
            t.test_connect_chap_targets, t.test_default_auth_back_to_none, t.test_sessions_table, t.test_live_state,
            t.test_in_cockpit_shell,
            t.test_session_details, t.test_disconnect_selected, t.test_select_all, t.test_in_use_flow, t.test_node_startup_persisted,
            t.test_node_settings_and_delete, t.test_dark_theme, t.test_limited_access,
            t.test_no_csp_violation,
        ]
        for s in scenarios:
            t0 = time.monotonic()
            print(f"--- {s.__name__}")
            try:
                s()
                passed += 1
                print(f"    ok ({time.monotonic() - t0:.1f} s)")
            except Exception:  # noqa: BLE001 - report every scenario
                failed += 1
                traceback.print_exc()
                try:
                    t.shot(f"FAILED-{s.__name__}")
                    print("--- the page's D-Bus trace (window.lunlink.store.trace)")
                    print("\n".join(browser.js("return window.lunlink ? window.lunlink.store.trace : ['no store']") or []))
                except Exception:  # noqa: BLE001
                    pass
                # Later scenarios build on earlier ones: stop at the first failure.
                break
    except Exception:  # noqa: BLE001
        failed += 1
        traceback.print_exc()
    finally:
        if browser:
            browser.quit()
        if failed:
            for name in ("lunlinkd", "cockpit-ws", "tgtd"):
                print(f"--- tail of {name}'s log\n{svc.tail(name)}")
        svc.close()
        if not failed and not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"browser_test: {time.monotonic() - started:.1f} s in all")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
