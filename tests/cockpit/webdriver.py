"""A small W3C WebDriver client over the standard library, for chromedriver.

Only what the Cockpit page test needs: a session, navigation, finding and clicking elements,
typing, running scripts, screenshots and the browser log. Every wait polls with a deadline.
"""

import base64
import json
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriverError(Exception):
    pass


def _request(method, url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        payload = e.read()
        try:
            value = json.loads(payload).get("value", {})
            raise WebDriverError(f"{method} {url}: {value.get('error')}: {value.get('message', '')[:500]}") from None
        except (ValueError, AttributeError):
            raise WebDriverError(f"{method} {url}: HTTP {e.code}: {payload[:300]!r}") from None


def wait_until(what, fn, timeout=20.0, interval=0.1):
    """Polls fn() until it returns something true; raises with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except WebDriverError as e:
            last_exc = e
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


class Browser:
    def __init__(self, driver_url, chromium, args):
        self.base = driver_url.rstrip("/")
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "timeouts": {"script": 30000, "pageLoad": 60000, "implicit": 0},
                }
            }
        }
        value = _request("POST", f"{self.base}/session", caps, timeout=120)["value"]
        self.sid = value["sessionId"]
        self.url = f"{self.base}/session/{self.sid}"

    def _cmd(self, method, path, body=None, timeout=60):
        return _request(method, self.url + path, body, timeout).get("value")

    def quit(self):
        try:
            _request("DELETE", self.url, timeout=30)
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass

    def go(self, url):
        self._cmd("POST", "/url", {"url": url})

    def refresh(self):
        self._cmd("POST", "/refresh", {})

    def js(self, script, *args):
        return self._cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find_all(self, css):
        return [e[ELEMENT] for e in self._cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def find(self, css, timeout=20.0):
        """The first element matching css that is displayed, once there is one."""
        def visible():
            for el in self.find_all(css):
                if self._cmd("GET", f"/element/{el}/displayed"):
                    return el
            return None
        return wait_until(f"a visible element {css!r}", visible, timeout)

    def click(self, css, timeout=20.0):
        # Retry while an animation or a re-render is in the way (a re-render replaces elements:
        # find it again each time).
        def clicked():
            el = self.find(css, timeout)
            try:
                self._cmd("POST", f"/element/{el}/click", {})
                return True
            except WebDriverError as e:
                if any(m in str(e) for m in ("not interactable", "click intercepted", "stale element")):
                    return False
                raise
        wait_until(f"{css!r} to take a click", clicked, timeout)

    def type(self, css, text, clear=True):
        def typed():
            el = self.find(css)
            try:
                # Select all and delete, as a person would: WebDriver's "clear" empties the
                # field without the input event that React listens to.
                prefix = "\ue009a\ue000\ue003" if clear else ""
                self._cmd("POST", f"/element/{el}/value", {"text": prefix + text})
                return True
            except WebDriverError as e:
                if "stale element" in str(e):
                    return False
                raise
        wait_until(f"typing into {css!r}", typed, 20)

    def text(self, css):
        el = self.find(css)
        return self._cmd("GET", f"/element/{el}/text")

    def wait_text(self, css, needle, timeout=30.0):
        """Waits until the text of css contains needle; returns that text."""
        def has():
            for el in self.find_all(css):
                t = self._cmd("GET", f"/element/{el}/text")
                if needle in t:
                    return t
            return None
        return wait_until(f"{needle!r} in {css!r}", has, timeout)

    def wait_js(self, what, script, *args, timeout=30.0):
        return wait_until(what, lambda: self.js(script, *args), timeout)

    def frame(self, css=None):
        """Switches into the iframe matching css, or back to the top document with None."""
        if css is None:
            self._cmd("POST", "/frame", {"id": None})
        else:
            el = self.find(css)
            self._cmd("POST", "/frame", {"id": {ELEMENT: el}})

    def screenshot(self, path):
        png = base64.b64decode(self._cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    def set_window(self, width, height):
        self._cmd("POST", "/window/rect", {"width": width, "height": height})

    def log(self):
        """The browser console entries since the last call (chromedriver's legacy log endpoint)."""
        return self._cmd("POST", "/se/log", {"type": "browser"}) or []
