"""The services the Cockpit page test runs against, all private to the test and on loopback:
a system-type dbus-daemon, tgtd with real targets, lunlinkd, cockpit-ws and chromedriver.

Readiness is always polled with a deadline. tgtd control numbers and ports are reserved with the
same flock files as the Rust harness (tests/src/lock.rs), so this test and cargo tests can run
side by side.
"""

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

from webdriver import wait_until

LOCK_DIR = "/tmp/lunlink-tests"


class Lock:
    """An exclusive flock on LOCK_DIR/<name>.lock, or None when someone holds it."""

    @staticmethod
    def take(name):
        os.makedirs(LOCK_DIR, exist_ok=True)
        try:
            os.chmod(LOCK_DIR, 0o1777)
        except PermissionError:
            pass
        path = os.path.join(LOCK_DIR, f"{name}.lock")
        while True:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                lock = Lock()
                lock.fd, lock.path = fd, path
                return lock
            os.close(fd)

    def release(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)


def free_port():
    """A free 127.0.0.1 port, leased against other users of the harness until the lock goes."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        lock = Lock.take(f"port-{port}")
        if lock:
            return port, lock
    raise RuntimeError("no free loopback port")


def refused_port():
    """A 127.0.0.1 port that refuses connections for as long as the returned socket is open: it
    is bound but never listens, so nobody else can take the port meanwhile."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1], s


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class Services:
    def __init__(self, repo, tmp, log):
        self.repo = repo
        self.tmp = tmp
        self.log = log
        self.procs = {}
        self.locks = []
        self.tgt_ctl = None

    # --- processes -------------------------------------------------------------------------

    def spawn(self, name, argv, env=None):
        out = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        self.procs[name] = p
        return p

    def stop(self, name, sig=signal.SIGTERM, timeout=30):
        p = self.procs.pop(name, None)
        if not p or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def alive(self, name):
        p = self.procs.get(name)
        if not p or p.poll() is not None:
            raise RuntimeError(f"{name} exited: see {os.path.join(self.tmp, name + '.log')}:\n{self.tail(name)}")
        return True

    def tail(self, name, n=30):
        try:
            with open(os.path.join(self.tmp, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    def close(self):
        for name in list(self.procs)[::-1]:
            self.stop(name, signal.SIGKILL if name == "tgtd" else signal.SIGTERM, timeout=15)
        if self.tgt_ctl is not None:
            for suffix in ("", ".lock"):
                try:
                    os.unlink(f"/run/tgtd/socket.{self.tgt_ctl}{suffix}")
                except FileNotFoundError:
                    pass
        for lock in self.locks:
            lock.release()

    # --- D-Bus ----------------------------------------------------------------------------

    def start_bus(self):
        sock = os.path.join(self.tmp, "bus.sock")
        conf = os.path.join(self.tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow send_type="method_call"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
""")
        self.spawn("dbus-daemon", ["dbus-daemon", "--nofork", f"--config-file={conf}"])
        self.bus = f"unix:path={sock}"
        wait_until("the private D-Bus socket", lambda: self.alive("dbus-daemon") and os.path.exists(sock), 20)
        wait_until("the private D-Bus to answer", lambda: self.dbus_send(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId", check=False).returncode == 0, 20)

    def dbus_send(self, dest, path, method, *args, check=True):
        r = subprocess.run(["dbus-send", f"--bus={self.bus}", "--print-reply", f"--dest={dest}", path, method, *args],
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"dbus-send {method} failed: {r.stderr.strip()}")
        return r

    def managed_objects(self):
        """Everything lunlinkd shows on the bus, as dbus-send prints it."""
        return self.dbus_send("org.lunlink.Initiator1", "/org/lunlink/Initiator1",
                              "org.freedesktop.DBus.ObjectManager.GetManagedObjects").stdout

    def manager_properties(self):
        return self.dbus_send("org.lunlink.Initiator1", "/org/lunlink/Initiator1", "org.freedesktop.DBus.Properties.GetAll",
                              "string:org.lunlink.Initiator1.Manager").stdout

    # --- tgtd -----------------------------------------------------------------------------

    def tgtadm(self, *args):
        r = subprocess.run(["tgtadm", "-C", str(self.tgt_ctl), "--lld", "iscsi", *args],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"tgtadm {' '.join(args)}: {r.stderr.strip()}\n{self.tail('tgtd')}")
        return r.stdout

    def start_tgtd(self, targets):
        """targets: list of (tid, iqn, lun_mib, incoming (user, secret) or None, outgoing or None)."""
        seed = random.randrange(4000)
        for i in range(4000):
            n = 20000 + (seed + i) % 4000
            lock = Lock.take(f"tgtd-{n}")
            if lock:
                self.locks.append(lock)
                self.tgt_ctl = n
                break
        else:
            raise RuntimeError("no free tgtd control number")
        self.tgt_port, lock = free_port()
        self.locks.append(lock)
        self.portal = f"127.0.0.1:{self.tgt_port}"
        self.spawn("tgtd", ["tgtd", "-f", "-C", str(self.tgt_ctl), "--iscsi", f"portal={self.portal}"])

        def answers():
            self.alive("tgtd")
            r = subprocess.run(["tgtadm", "-C", str(self.tgt_ctl), "--lld", "iscsi", "--op", "show", "--mode", "sys"],
                               capture_output=True, timeout=5)
            return r.returncode == 0
        wait_until("tgtd to answer tgtadm", answers, 30)
        # The same targets on IPv6 loopback too (the page's IPv6 discovery).
        self.tgtadm("--op", "new", "--mode", "portal", "--param", f"portal=[::1]:{self.tgt_port}")

        for tid, iqn, mib, incoming, outgoing in targets:
            self.tgtadm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
            img = os.path.join(self.tmp, f"lun-{tid}.img")
            with open(img, "wb") as f:
                f.truncate(mib << 20)
            self.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", "1", "-b", img)
            self.tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")
            if incoming:
                user, secret = incoming
                self.tgtadm("--op", "new", "--mode", "account", "--user", user, "--password", secret)
                self.tgtadm("--op", "bind", "--mode", "account", "--tid", str(tid), "--user", user)
            if outgoing:
                user, secret = outgoing
                self.tgtadm("--op", "new", "--mode", "account", "--user", user, "--password", secret)
                self.tgtadm("--op", "bind", "--mode", "account", "--tid", str(tid), "--user", user, "--outgoing")

    def drop_connections(self, tid):
        """Closes every connection to target tid from tgtd's side (TCP FIN, no async message)."""
        sid = None
        for line in self.tgtadm("--op", "show", "--mode", "conn", "--tid", str(tid)).splitlines():
            line = line.strip()
            if line.startswith("Session:"):
                sid = line.split(":", 1)[1].strip()
            elif line.startswith("Connection:") and sid is not None:
                cid = line.split(":", 1)[1].strip()
                self.tgtadm("--op", "delete", "--mode", "conn", "--tid", str(tid), "--sid", sid, "--cid", cid)

    def set_target_state(self, tid, state):
        """"offline": new logins get status 0x0300 (target unavailable); "ready" again."""
        self.tgtadm("--op", "update", "--mode", "target", "--tid", str(tid), "--name", "state", "--value", state)

    # --- lunlinkd -------------------------------------------------------------------------

    def start_lunlinkd(self):
        state = os.path.join(self.tmp, "state")
        os.makedirs(state, mode=0o700, exist_ok=True)
        config = os.path.join(self.tmp, "lunlink.toml")
        if not os.path.exists(config):
            with open(config, "w") as f:
                f.write("# the Cockpit page test: built-in defaults\n")
        env = dict(os.environ, RUST_LOG="info")
        self.spawn("lunlinkd", [os.path.join(self.repo, "target/release/lunlinkd"), "--bus", self.bus,
                                "--config", config, "--state-dir", state], env=env)

        def ready():
            self.alive("lunlinkd")
            return self.dbus_send("org.lunlink.Initiator1", "/org/lunlink/Initiator1", "org.freedesktop.DBus.Properties.Get",
                                  "string:org.lunlink.Initiator1.Manager", "string:Version", check=False).returncode == 0
        wait_until("lunlinkd on the private bus", ready, 30)

    def stop_lunlinkd(self):
        self.stop("lunlinkd", signal.SIGTERM, timeout=45)

    def lunlinkctl(self, *args):
        r = subprocess.run([os.path.join(self.repo, "target/release/lunlinkctl"), "--bus", self.bus, *args],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"lunlinkctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    # --- cockpit-ws and chromedriver -------------------------------------------------------

    def start_cockpit(self, dist, as_nobody=False):
        """cockpit-ws without login (its bridge runs as the user that runs it); returns its URL.

        as_nobody: run it as user nobody, a user without administrative access."""
        name = "cockpit-ws-nobody" if as_nobody else "cockpit-ws"
        base = os.path.join(self.tmp, name)
        xdg = os.path.join(base, "xdg")
        os.makedirs(os.path.join(xdg, "cockpit"), exist_ok=True)
        # A copy, not a link: user nobody may not reach the work tree (a clone under /root).
        pkg = os.path.join(xdg, "cockpit", "lunlink")
        if not os.path.exists(pkg):
            shutil.copytree(dist, pkg)
        port, lock = free_port()
        self.locks.append(lock)
        home = os.path.join(base, "home")
        run = os.path.join(base, "run")
        os.makedirs(home, exist_ok=True)
        os.makedirs(run, mode=0o700, exist_ok=True)
        env = dict(os.environ, XDG_DATA_HOME=xdg, DBUS_SYSTEM_BUS_ADDRESS=self.bus, DBUS_SESSION_BUS_ADDRESS=self.bus,
                   HOME=home, XDG_RUNTIME_DIR=run)
        argv = ["/usr/lib/cockpit/cockpit-ws", "--no-tls", "--address", "127.0.0.1", "--port", str(port),
                "--local-session=cockpit-bridge"]
        if as_nobody:
            os.chmod(self.tmp, 0o755)
            for d in (base, home, run):
                os.chown(d, 65534, 65534)
            for root, dirs, files in os.walk(base):
                for n in dirs + files:
                    os.chmod(os.path.join(root, n), 0o755 if n in dirs else 0o644)
            env["USER"] = env["LOGNAME"] = "nobody"
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        self.spawn(name, argv, env=env)
        url = f"http://127.0.0.1:{port}"

        def serves():
            self.alive(name)
            try:
                return b'"lunlink"' in http_get(f"{url}/cockpit/@localhost/manifests.json")
            except OSError:
                return False
        wait_until(f"{name} to list the lunlink package", serves, 30)
        if not as_nobody:
            self.cockpit = url
        return url

    def start_chromedriver(self):
        self.driver_port, lock = free_port()
        self.locks.append(lock)
        self.spawn("chromedriver", ["chromedriver", f"--port={self.driver_port}"])
        url = f"http://127.0.0.1:{self.driver_port}"

        def ready():
            self.alive("chromedriver")
            try:
                return b'"ready":true' in http_get(f"{url}/status").replace(b" ", b"")
            except OSError:
                return False
        wait_until("chromedriver", ready, 30)
        return url
