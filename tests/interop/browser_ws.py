#!/usr/bin/env python3
"""A real headless Chromium opens wss://127.0.0.1:PORT/derp with subprotocol "derp".

The test page (served by a small HTTP server on 127.0.0.1) opens the WebSocket, and when the first message arrives it
writes what it saw into the DOM: the negotiated subprotocol, the first DERP frame's type,
length and magic. This script drives Chromium over the DevTools protocol on a pipe
(--remote-debugging-pipe, no extra Python packages), reads that DOM element back and
asserts on it: subprotocol "derp", frame type 0x01 (ServerKey), 40-byte payload starting
with the magic "DERP" + U+1F511, and the key in it equal to the server's.

Environment: INTEROP_DERP_PORT (required), INTEROP_SERVER_KEY_FILE (optional: the
derper-format key file, to compare the announced key), CHROMIUM (default: chromium).
Prints one line per check ("PASS name", "FAIL name: why") and exits 0 only if all passed;
exits 77 with "SKIPPED: why" when Chromium is not installed.
"""
import fcntl
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time

# Whole-test deadline: Chromium start, page load, TLS, upgrade, first message.
DEADLINE_SECONDS = 60

PAGE = r"""<!doctype html><meta charset="utf-8"><title>derp websocket</title>
<pre id="result" data-done="0">pending</pre>
<script>
const out = document.getElementById('result');
function finish(obj) {
  out.textContent = JSON.stringify(obj);
  out.dataset.done = '1';
}
try {
  const ws = new WebSocket('wss://127.0.0.1:PORT/derp', ['derp']);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (ev) => {
    const b = new Uint8Array(ev.data);
    const len = ((b[1] << 24) | (b[2] << 16) | (b[3] << 8) | b[4]) >>> 0;
    finish({
      protocol: ws.protocol,
      extensions: ws.extensions,
      messageBytes: b.length,
      frameType: b[0],
      frameLen: len,
      magic: new TextDecoder().decode(b.slice(5, 13)),
      key: Array.from(b.slice(13, 45)).map(x => x.toString(16).padStart(2, '0')).join(''),
    });
    ws.close(1000, 'done');
  };
  ws.onclose = (ev) => {
    if (out.dataset.done !== '1') finish({error: 'closed before a message', code: ev.code});
  };
  ws.onerror = () => {
    if (out.dataset.done !== '1') finish({error: 'websocket error'});
  };
} catch (e) {
  finish({error: String(e)});
}
</script>
"""


class DevTools:
    """The DevTools protocol over Chromium's pipe: JSON messages ended by NUL bytes."""

    def __init__(self, proc, to_browser, from_browser):
        self.proc = proc
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.next_id = 0
        self.pending = b""

    def call(self, method, params=None, session=None, timeout=10.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.pending:
                raw, self.pending = self.pending.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {method}")
            ready, _, _ = select.select([self.from_browser], [], [], 0.5)
            if ready:
                chunk = os.read(self.from_browser, 65536)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.pending += chunk


def expected_key():
    path = os.environ.get("INTEROP_SERVER_KEY_FILE")
    if not path:
        return None
    try:
        with open(path) as f:
            private = json.load(f)["PrivateKey"].removeprefix("privkey:")
    except (OSError, KeyError, ValueError):
        return None
    try:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    except ImportError:
        return None
    pub = X25519PrivateKey.from_private_bytes(bytes.fromhex(private)).public_key()
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def main():
    port = os.environ.get("INTEROP_DERP_PORT")
    if not port:
        print("FAIL setup: INTEROP_DERP_PORT not set")
        return 1
    chromium = shutil.which(os.environ.get("CHROMIUM", "chromium"))
    if not chromium:
        print("SKIPPED: chromium is not installed (Debian package chromium)")
        return 77
    # The page is served from 127.0.0.1 too: Chromium's local-network-access checks block a
    # page from a public or opaque origin (such as a data: URL) from reaching loopback.
    body = PAGE.replace("PORT", port).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    page_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    page = f"http://127.0.0.1:{page_server.server_address[1]}/"
    profile = tempfile.mkdtemp(prefix="tinyderp-chromium.")
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    # Chromium reads commands on fd 3 and writes answers on fd 4. Both ends are first
    # copied above 10 so that placing one cannot overwrite the other.
    def child_fds():
        high_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    args = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--ignore-certificate-errors",
        "--remote-debugging-pipe",
        "--enable-logging=stderr",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--user-data-dir=" + profile,
        "about:blank",
    ]
    log_path = os.path.join(profile, "chromium.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(args, stdout=log, stderr=log, preexec_fn=child_fds, pass_fds=(3, 4))
    os.close(to_r)
    os.close(from_w)
    failures = 0
    result = None
    try:
        dt = DevTools(proc, to_w, from_r)
        version = dt.call("Browser.getVersion", timeout=30)
        print(f"# {version.get('product')}")
        target = dt.call("Target.createTarget", {"url": page})["targetId"]
        session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            got = dt.call(
                "Runtime.evaluate",
                {
                    "expression": "(() => { const e = document.getElementById('result');"
                    " return e && e.dataset.done === '1' ? e.textContent : null; })()",
                    "returnByValue": True,
                },
                session=session,
            )
            value = got.get("result", {}).get("value")
            if value:
                result = json.loads(value)
                break
            time.sleep(0.2)
        try:
            dt.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
    except (RuntimeError, TimeoutError, OSError, ValueError) as err:
        print(f"FAIL devtools: {err}")
        failures += 1
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    if result is None:
        if failures == 0:
            print(f"FAIL page: no result in the DOM within {DEADLINE_SECONDS}s")
        with open(log_path, errors="replace") as f:
            sys.stdout.write("".join(("# " + line) for line in f.readlines()[-30:]))
        shutil.rmtree(profile, ignore_errors=True)
        return 1
    shutil.rmtree(profile, ignore_errors=True)
    print(f"# DOM result: {json.dumps(result)}")
    checks = [
        ("no error", "error" not in result, result.get("error")),
        ("subprotocol derp", result.get("protocol") == "derp", result.get("protocol")),
        ("no extensions", result.get("extensions") == "", result.get("extensions")),
        ("first frame is ServerKey (0x01)", result.get("frameType") == 1, result.get("frameType")),
        ("ServerKey payload 40 bytes", result.get("frameLen") == 40, result.get("frameLen")),
        ("magic DERP\U0001F511", result.get("magic") == "DERP\U0001F511", result.get("magic")),
    ]
    key = expected_key()
    if key:
        checks.append(("key is the server's", result.get("key") == key, result.get("key")))
    else:
        print("# server key not compared (no key file or no python3-cryptography)")
    for name, ok, got in checks:
        if ok:
            print(f"PASS {name}")
        else:
            print(f"FAIL {name}: got {got!r}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
