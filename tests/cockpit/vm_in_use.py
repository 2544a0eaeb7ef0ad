#!/usr/bin/python3
"""The Cockpit page's InUse path on a real block device (issue 13): the VM scenario
tests/vm/scenarios/cockpit-in-use.sh logs in to tgtd, mounts ext4 on the LUN's /dev/ublkbN
and runs cockpit-bridge on a virtio serial port; here, on the host, cockpit-ws takes that
bridge as its session (socat to the port's UNIX socket: one byte stream, no network) and
headless Chromium drives the page: the session shows its LUN "mounted on /mnt", Disconnect is
refused with the holder named, "Disconnect anyway" asks for confirmation and then logs out.
The guest checks that the session and its LUN are gone. Run by tests/cockpit/vm-in-use.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from browser_test import CHROMIUM_ARGS, REPO, SHOTS  # noqa: E402
from services import Services, free_port  # noqa: E402
from webdriver import Browser, wait_until  # noqa: E402

SCENARIO = "cockpit-in-use"
# Boot, image build (and a first kernel download) included.
READY_WITHIN = 900


def main():
    for tool in ("chromium", "chromedriver", "socat", "/usr/lib/cockpit/cockpit-ws"):
        if not shutil.which(tool):
            print(f"vm_in_use: {tool} is missing (run scripts/install-deps)", file=sys.stderr)
            return 1
    os.makedirs(SHOTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="lunlink-cockpit-vm-")
    sock = os.path.join(tmp, "bridge.sock")
    vm = subprocess.Popen([os.path.join(REPO, "tests", "vm", "run"), SCENARIO, f"--virtio-port=lunlink.bridge={sock}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ready = threading.Event()
    found = {}

    def reader():
        for raw in iter(vm.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            print(line, flush=True)
            if "COCKPIT-BRIDGE: ready" in line and not ready.is_set():
                parts = line.split("COCKPIT-BRIDGE: ready", 1)[1].split()
                found["target"], found["device"] = parts[0], parts[1]
                ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    svc = Services(REPO, tmp, print)
    browser = None
    failed = []

    def check(what, ok):
        print(f"{'PASS' if ok else 'FAIL'}: {SCENARIO} (browser): {what}", flush=True)
        if not ok:
            failed.append(what)

    try:
        deadline = time.monotonic() + READY_WITHIN
        while not ready.wait(1):
            if vm.poll() is not None:
                raise RuntimeError("the VM ended before its bridge was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the VM's bridge was not ready within {READY_WITHIN} s")
        target, device = found["target"], found["device"]
        wrapper = os.path.join(tmp, "bridge-in-vm")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\n# cockpit-ws's session: the guest's cockpit-bridge.\nexec socat - UNIX-CONNECT:{sock}\n")
        os.chmod(wrapper, 0o755)
        port, lock = free_port()
        svc.locks.append(lock)
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        svc.spawn("cockpit-ws", ["/usr/lib/cockpit/cockpit-ws", "--no-tls", "--address", "127.0.0.1", "--port", str(port),
                                 f"--local-session={wrapper}"], env=dict(os.environ, HOME=home))

        def listens():
            svc.alive("cockpit-ws")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_until("cockpit-ws to listen", listens, 30)
        driver = svc.start_chromedriver()
        browser = Browser(driver, shutil.which("chromium"), CHROMIUM_ARGS + [f"--user-data-dir={os.path.join(tmp, 'profile')}"])
        # One page load only: each cockpit-ws session is one bridge, and the guest has one.
        browser.go(f"http://127.0.0.1:{port}/cockpit/@localhost/lunlink/index.html#/connections")
        browser.find("#view-connections", timeout=120)
        row = f'#sessions-table tbody[data-session="{target}"]'
        browser.wait_text(row, f"mounted on /mnt", timeout=120)
        check(f"the page lists the session of {target} with {device} mounted on /mnt", True)
        browser.screenshot(os.path.join(SHOTS, "vm-01-mounted.png"))
        browser.click(f"{row} input[type=checkbox]")
        browser.click("#disconnect-selected")
        browser.wait_text("#inuse-alert", "mounted on /mnt", timeout=120)
        check("Disconnect is refused and the alert names the mount", True)
        check("the session is still listed after the refusal",
              bool(browser.js("return !!document.querySelector(arguments[0])", row)))
        browser.screenshot(os.path.join(SHOTS, "vm-02-refused.png"))
        browser.click("#disconnect-anyway")
        browser.wait_text("#force-dialog", "Data may be lost")
        check("'Disconnect anyway' asks for confirmation, saying data may be lost", True)
        browser.screenshot(os.path.join(SHOTS, "vm-03-confirm.png"))
        browser.click("#force-confirm")
        wait_until(f"{target} to leave the table",
                   lambda: browser.js("return !document.querySelector(arguments[0])", row), 120)
        check("after confirmation the session leaves the table", True)
        browser.screenshot(os.path.join(SHOTS, "vm-04-disconnected.png"))
    except Exception as e:  # noqa: BLE001 - reported as a failure
        traceback.print_exc()
        check(f"the browser side ran to its end ({e})", False)
        if browser:
            try:
                browser.screenshot(os.path.join(SHOTS, "vm-FAILED.png"))
            except Exception:  # noqa: BLE001
                pass
        print(f"--- tail of cockpit-ws's log\n{svc.tail('cockpit-ws')}")
    finally:
        if browser:
            browser.quit()
        svc.close()
    try:
        rc = vm.wait(timeout=400)
    except subprocess.TimeoutExpired:
        vm.kill()
        rc = vm.wait()
    t.join(timeout=10)
    check(f"the VM scenario passed (tests/vm/run exit {rc})", rc == 0)
    if not failed:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"vm_in_use: {'all passed' if not failed else f'{len(failed)} failed'}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
