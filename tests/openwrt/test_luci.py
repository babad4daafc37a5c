"""luci-app-tinyderp on real LuCI, driven in Debian's Chromium through the DevTools protocol.

One OpenWrt router (procd as PID 1, see router.py) with the LuCI pieces of build-luci.sh
(uhttpd, rpcd, luci-base, the bootstrap theme) boots, once as 24.10 and once as 25.12;
tinyderp and luci-app-tinyderp are installed with opkg (24.10) or apk (25.12) as on a
router, and every browser scenario runs on both. Playwright drives the system
Chromium, started inside the router's network namespace, against uhttpd on 127.0.0.1:80.
The scenarios run in order on each router. A console error or an uncaught exception
on one of our pages fails the scenario. Screenshots (of the 24.10 run) go to
docs/img/luci-*.png.

Environment (set by tests/openwrt/run-luci.sh): OPENWRT_USERLAND, OPENWRT_LUCI (output of
build-luci.sh), TINYDERP_DIST (x86_64 .ipk and the luci-app .ipk), DERP_CLIENT, and
TINYDERP_HOST_BIN (a host build of tinyderp with the tls-client feature: the mesh peer).
"""

import glob
import hashlib
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, _need, apk_path, ipk_path
from router import Router

RELAY = "127.0.0.1:8443"
BASE = "http://127.0.0.1"
PASSWORD = "tinyderp-luci-test"
IMG = os.path.join(REPO, "docs", "img")
# Console errors that come from this test system, not from our pages: LuCI's own apply
# (ui.changes.checkConnectivityAffected) runs /usr/libexec/luci-peeraddr through cgi-io's
# /cgi-bin/cgi-exec, and cgi-io (a dependency of luci-base on a router) has no source
# snapshot here, so that request answers 404.
NOT_OURS = [r"status of 404 .*\(http://127\.0\.0\.1/cgi-bin/cgi-exec\?"]
# The status table's rows (ids tinyderp-<row>): issue 15's list for the status page.
STATUS_ROWS = ("state", "version", "uptime", "clients", "traffic", "drops", "refusals", "check",
               "pin", "mesh")
# Our pages, by menu path.
PAGES = {
    "status": "/cgi-bin/luci/admin/services/tinyderp/status",
    "settings": "/cgi-bin/luci/admin/services/tinyderp/settings",
    "access": "/cgi-bin/luci/admin/services/tinyderp/access",
}


def luci_ipk(dist):
    found = sorted(glob.glob(os.path.join(dist, "luci-app-tinyderp_*_all.ipk")))
    if not found:
        pytest.skip("no luci-app-tinyderp .ipk in " + dist)
    return found[-1]


def command(r):
    for inst in r.running().values():
        return inst.get("command")
    return None


def client(r, derp_client, *args, timeout=30):
    return r.host_net([derp_client, *args], capture_output=True, text=True, timeout=timeout)


def pubkey(derp_client, seed):
    return subprocess.run([derp_client, "pubkey", str(seed)], capture_output=True, text=True,
                          check=True).stdout.strip()


def cert_pin(r):
    """sha256-raw: + SHA-256 of the DER of the relay's certificate, computed here."""
    pem = r.sh("cat /etc/tinyderp/*.crt").stdout
    first = pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    der = ssl.PEM_cert_to_DER_cert(first)
    return "sha256-raw:" + hashlib.sha256(der).hexdigest()


def boot_luci(userland, release):
    overlay = _need("OPENWRT_LUCI")
    r = Router(userland, release, overlays=[os.path.join(overlay, "root")])
    r.assemble()
    root = r.root
    # What the image build does for these packages: enabled services, luci-base and its
    # dependencies known to the package manager, a root password (the login checks
    # /etc/shadow).
    for name, prio in (("rpcd", 12), ("uhttpd", 50)):
        os.symlink(f"../init.d/{name}", os.path.join(root, f"etc/rc.d/S{prio}{name}"))
    if release == "24.10":
        with open(os.path.join(root, "usr/lib/opkg/status"), "a") as f:
            for pkg in ("luci-base", "rpcd", "uhttpd"):
                f.write(f"Package: {pkg}\nVersion: 0-image\nStatus: install user installed\n"
                        "Architecture: all\nInstalled-Time: 0\n\n")
    hashed = subprocess.run(["openssl", "passwd", "-6", PASSWORD], capture_output=True,
                            text=True, check=True).stdout.strip()
    shadow = os.path.join(root, "etc/shadow")
    lines = open(shadow).read().splitlines()
    lines = [f"root:{hashed}:" + ":".join(line.split(":")[2:]) if line.startswith("root:") else line
             for line in lines]
    open(shadow, "w").write("\n".join(lines) + "\n")
    r.boot()
    # The system hostname from /etc/config/system, as OpenWrt's system init sets it (the
    # UTS namespace is the router's own); LuCI shows it in the header.
    r.sh("uci get system.@system[0].hostname >/proc/sys/kernel/hostname")
    if release != "24.10":
        # apk: luci-base as a package of the image (an empty stand-in in apk's database,
        # which this rootfs creates first, as the image build would).
        r.sh("apk add --initdb --no-network -t luci-base")
    r.wait_for(lambda: "x-luci-login-required" in http_head(r, "/cgi-bin/luci/").lower(),
               60, "LuCI login page from uhttpd")
    return r


# The release whose screenshots are the docs' (one set, not overwritten by the other).
SHOT_RELEASE = "24.10"


@pytest.fixture(scope="module", params=["24.10", "25.12"])
def luci(userland, request):
    r = boot_luci(userland, request.param)
    yield r
    r.cleanup()


def http_head(r, path):
    p = r.host_net(["python3", "-c",
                    "import sys,urllib.request,urllib.error\n"
                    "try:\n r=urllib.request.urlopen(sys.argv[1],timeout=5); print(r.headers)\n"
                    "except urllib.error.HTTPError as e: print(e.code, e.headers)\n",
                    BASE + path], capture_output=True, text=True, timeout=20)
    return p.stdout


class Browser:
    """Playwright on the system Chromium, inside the router's network namespace. Collects
    console errors and uncaught exceptions of every page."""

    def __init__(self, r):
        from playwright.sync_api import sync_playwright
        self.dir = tempfile.mkdtemp(prefix="luci-chromium-")
        wrapper = os.path.join(self.dir, "chromium")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec nsenter -t {r.pid} -n /usr/bin/chromium \"$@\"\n")
        os.chmod(wrapper, stat.S_IRWXU)
        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path=wrapper, headless=True,
                                               args=["--no-sandbox", "--disable-gpu"])
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(
            f"console: {m.text} ({m.location.get('url', '')})"))
        self.page.on("pageerror", lambda e: self.errors.append(f"exception: {e}"))

    def take_errors(self):
        errors, self.errors = self.errors, []
        return [e for e in errors if not any(re.search(k, e) for k in NOT_OURS)]

    def close(self):
        self.context.close()
        self.browser.close()
        self.pw.stop()


@pytest.fixture(scope="module")
def browser(luci):
    pytest.importorskip("playwright.sync_api")
    b = Browser(luci)
    yield b
    b.close()


def shot(r, page, name):
    if r.release != SHOT_RELEASE:
        return
    os.makedirs(IMG, exist_ok=True)
    page.screenshot(path=os.path.join(IMG, f"luci-{name}.png"), full_page=True)


def open_page(b, name):
    b.page.goto(BASE + PAGES[name])
    # LuCI renders the view client-side: wait until it replaced the spinner.
    try:
        b.page.wait_for_selector("#view .cbi-map", timeout=30000)
    except Exception as e:  # noqa: BLE001 - re-raised with what the page said
        raise AssertionError(f"{name} page did not render: {b.errors} "
                             f"{b.page.inner_text('#view')[:500]!r}") from e


APP = os.path.join(REPO, "openwrt", "luci-app-tinyderp")


def luci_apk(dist):
    found = sorted(glob.glob(os.path.join(dist, "luci-app-tinyderp-*.apk")))
    if not found:
        pytest.skip("no luci-app-tinyderp .apk in " + dist)
    return found[-1]


def test_acl_grants_what_the_views_call():
    """acl.d grants exactly the luci.tinyderp methods the views declare, and uci tinyderp"""
    views = glob.glob(os.path.join(APP, "htdocs/luci-static/resources/view/tinyderp/*.js"))
    called = set()
    for v in views:
        for obj, method in re.findall(r"object: '([^']+)', method: '([^']+)'", open(v).read()):
            called.add((obj, method))
    acl = json.load(open(os.path.join(APP, "root/usr/share/rpcd/acl.d/luci-app-tinyderp.json")))
    grant = acl["luci-app-tinyderp"]
    granted = {(obj, m) for part in ("read", "write")
               for obj, methods in grant[part].get("ubus", {}).items() for m in methods}
    assert called and granted == called, (granted, called)
    assert grant["read"]["uci"] == ["tinyderp"] and grant["write"]["uci"] == ["tinyderp"]
    plugin = open(os.path.join(APP, "root/usr/share/rpcd/ucode/luci.tinyderp")).read()
    # Live data comes from the relay (tinyderp status --json), never from the log.
    assert "logread" not in plugin and "status --json" in plugin
    for _obj, method in called:
        assert re.search(rf"^\t{method}: {{", plugin, re.M), f"plugin lacks {method}"


def test_translation_template_is_current():
    """po/templates/tinyderp.pot holds every _() string of the views (scripts/luci-pot.py)"""
    script = os.path.join(REPO, "scripts", "luci-pot.py")
    out = subprocess.run(["python3", script, "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    pot = open(os.path.join(APP, "po", "templates", "tinyderp.pot")).read()
    msgids = re.findall(r'^msgid "(.+)"$', pot, re.M)
    # Every call of _() has a literal the script found (none is built at run time).
    calls = 0
    for v in glob.glob(os.path.join(APP, "htdocs", "**", "*.js"), recursive=True):
        text = open(v).read()
        calls += len(re.findall(r"\b_\(", text))
        for literal in re.findall(r"\b_\('((?:[^'\\]|\\.)*)'", text):
            assert literal.replace("\\'", "'") in [m.replace('\\"', '"') for m in msgids], literal
    refs = sum(1 for line in pot.splitlines() if line.startswith("#: ")
               for ref in line.split()[1:] if ref.startswith("htdocs/"))
    assert calls and refs == calls, (refs, calls)
    for title in ("DERP relay", "Status", "Settings"):
        assert f'msgid "{title}"' in pot, title
    if shutil.which("msgfmt"):
        subprocess.run(["msgfmt", "--check-format", "-o", os.devnull, "-"], input=pot,
                       text=True, check=True)


def test_apk_read_by_apk_tools(userland, dist):
    """the real apk-tools reads the .apk: noarch, depends on tinyderp and luci-base"""
    apk = os.path.join(userland, "root", "usr", "bin", "apk")
    out = subprocess.run([apk, "adbdump", luci_apk(dist)], capture_output=True, text=True,
                         check=True).stdout
    assert "name: luci-app-tinyderp" in out and "arch: noarch" in out, out[:400]
    deps = re.search(r"depends: # 2 items\n((?:\s+- .*\n)+)", out)
    assert deps and deps.group(1).split() == ["-", "tinyderp", "-", "luci-base"], out[:800]
    assert "usr/share/rpcd/ucode" in out


class TestLuci:
    def test_install(self, luci, dist):
        """opkg (24.10) or apk (25.12) installs both packages; rpcd offers luci.tinyderp"""
        r = luci
        if r.release == "24.10":
            r.put("/tmp/tinyderp.ipk", open(ipk_path(dist), "rb").read())
            r.put("/tmp/luci-app-tinyderp.ipk", open(luci_ipk(dist), "rb").read())
            r.sh("opkg install /tmp/tinyderp.ipk /tmp/luci-app-tinyderp.ipk")
            assert "luci-app-tinyderp" in r.sh("opkg list-installed").stdout
        else:
            r.put("/tmp/tinyderp.apk", open(apk_path(dist), "rb").read())
            r.put("/tmp/luci-app-tinyderp.apk", open(luci_apk(dist), "rb").read())
            r.sh("apk add --no-network --allow-untrusted /tmp/tinyderp.apk "
                 "/tmp/luci-app-tinyderp.apk")
            assert "luci-app-tinyderp" in r.sh("apk info").stdout
        r.wait_for(lambda: "luci.tinyderp" in r.sh("ubus list", check=False).stdout, 20,
                   "rpcd reloaded with our plugin (post-install)")
        r.sh("reload_config")  # prime it: later edits of tinyderp are then noticed
        r.sh("uci set tinyderp.main.enabled=1; uci commit tinyderp; reload_config")
        r.wait_for(lambda: command(r) is not None, 20, "relay running")
        r.wait_for(lambda: r.sh("ls /etc/tinyderp/*.crt", check=False).returncode == 0, 20,
                   "certificate generated")

    def test_login(self, luci, browser):
        """log in to LuCI in Chromium with root's password"""
        page = browser.page
        page.goto(BASE + "/cgi-bin/luci/")
        page.wait_for_selector("input[name=luci_password]", state="visible", timeout=30000)
        # Let the login dialog finish fading in before the screenshot.
        page.wait_for_timeout(1000)
        shot(luci, page, "login")
        page.fill("input[name=luci_username]", "root")
        page.fill("input[name=luci_password]", PASSWORD)
        page.press("input[name=luci_password]", "Enter")
        page.wait_for_selector("#topmenu, .main-left, header", timeout=30000)
        cookies = {c["name"] for c in browser.context.cookies()}
        assert any(n.startswith("sysauth") for n in cookies), cookies
        browser.take_errors()  # LuCI's own overview is not ours to judge

    def test_status_pin_and_clients(self, luci, browser, derp_client):
        """status page: the running relay's pin; the client count goes up with a client"""
        r, page = luci, browser.page
        open_page(browser, "status")
        pin = cert_pin(r)
        page.wait_for_function(
            "pin => (document.getElementById('tinyderp-pin')||{}).textContent == pin",
            arg=pin, timeout=30000)
        assert "Running" in page.inner_text("#tinyderp-state")
        before = int(page.inner_text("#tinyderp-clients"))
        hold = r.host_popen([derp_client, "hold", RELAY, "11", "12"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
        try:
            assert hold.stdout.readline().strip() == "ready"
            # The page polls every 5 s.
            page.wait_for_function(
                "n => Number((document.getElementById('tinyderp-clients')||{}).textContent) >= n",
                arg=before + 2, timeout=30000)
            # Every item of the status page (issue 15, item 2), each filled in.
            rows = {f: page.inner_text(f"#tinyderp-{f}").strip() for f in STATUS_ROWS}
            assert rows["version"].startswith("tinyderp "), rows
            assert re.fullmatch(r"\d+d \d+h \d+m \d+s", rows["uptime"]), rows
            assert re.fullmatch(r"[\d.]+ \S*B \(\d+ packets\)", rows["traffic"]), rows
            assert rows["drops"] and rows["refusals"] and rows["check"], rows
            assert rows["mesh"] == "none", rows
            for action in ("start", "stop", "restart"):
                assert page.locator(f"#tinyderp-{action}").is_visible(), action
            # The four DERP map snippets, each with its own copy button.
            titles = page.locator("#tinyderp-snippets h4").all_inner_texts()
            assert len(titles) == 4, titles
            for word, title in zip(("pinned", "no certificate check", "YAML", "JSON"), titles):
                assert word in title, (word, title)
            snippets = page.locator("#tinyderp-snippets pre").all_inner_texts()
            assert len(snippets) == 4
            assert pin in snippets[0] and '"InsecureForTests": true' in snippets[1]
            assert pin in snippets[2] and pin in snippets[3]
            json.loads("{" + snippets[0].rstrip().rstrip(",") + "}")
            json.loads(snippets[3])
            buttons = page.locator("#tinyderp-snippets button")
            assert buttons.count() == 4
            # Before the copy notifications cover the top of the page.
            page.evaluate("window.scrollTo(0, 0)")
            shot(luci, page, "status")
            browser.context.grant_permissions(["clipboard-read", "clipboard-write"])
            for i in range(4):
                buttons.nth(i).click()
                page.wait_for_selector("text=Copied to the clipboard.", timeout=10000)
                want = snippets[i].strip()
                copied = None
                for _ in range(50):
                    copied = page.evaluate("navigator.clipboard.readText()")
                    if copied.strip() == want:
                        break
                    time.sleep(0.1)
                assert copied.strip() == want, (i, copied[:200])
            hold.stdin.write("go\n")
            hold.stdin.flush()
            assert hold.wait(timeout=30) == 0, "held clients did not relay"
        finally:
            if hold.poll() is None:
                hold.kill()
        assert browser.take_errors() == []

    def test_settings_apply_reaches_procd(self, luci, browser):
        """a setting changed in the form and applied is on procd's command line"""
        r, page = luci, browser.page
        open_page(browser, "settings")
        for tab in ("Basic", "Certificate", "Who may connect", "Limits", "Advanced"):
            assert page.locator(f"ul.cbi-tabmenu li >> text='{tab}'").count() == 1, tab
        page.click("ul.cbi-tabmenu li >> text='Limits'")
        field = "#widget\\.cbid\\.tinyderp\\.main\\.max_clients"
        # The datatype from the option table: a negative count is refused in the form.
        page.fill(field, "-5")
        page.locator(field).blur()
        page.wait_for_selector(field + ".cbi-input-invalid", timeout=5000)
        page.fill(field, "7")
        page.locator(field).blur()
        page.wait_for_selector(field + ".cbi-input-invalid", state="detached", timeout=5000)
        shot(luci, page, "settings")
        page.locator(".cbi-page-actions").get_by_text("Save & Apply").first.click()
        r.wait_for(lambda: "--max-clients" in (command(r) or []) and
                   (command(r)[command(r).index("--max-clients") + 1] == "7"), 60,
                   "--max-clients 7 in the instance's command line")
        assert r.sh("uci get tinyderp.main.max_clients").stdout.strip() == "7"
        # Wait for LuCI's apply to confirm (no rollback).
        page.wait_for_timeout(3000)
        assert browser.take_errors() == []

    def test_allow_refused_key(self, luci, browser, derp_client):
        """a key refused in learn mode, allowed with one click, is then admitted"""
        r, page = luci, browser.page
        stranger = pubkey(derp_client, 22)
        for seed in (21, 23):
            r.sh(f"uci add_list tinyderp.main.allowed_key='{pubkey(derp_client, seed)}'")
        r.sh("uci set tinyderp.main.log_refused_keys=1; uci commit tinyderp; reload_config")
        r.wait_for(lambda: "--log-refused-keys" in (command(r) or []), 30, "learn mode on")
        r.wait_for(lambda: client(r, derp_client, "relay", RELAY, "21", "23").returncode == 0,
                   30, "allowed keys relay")
        assert client(r, derp_client, "relay", RELAY, "22", "21").returncode == 2
        # The relay's own record, through the plugin: learn mode's bounded list, with the
        # address and how often the key was refused (no log parsing).
        refused = json.loads(r.sh("ubus call luci.tinyderp refused").stdout)
        listed = [k for k in refused["refused"] if k["key"] == stranger]
        assert len(listed) == 1 and listed[0]["address"] == "127.0.0.1", refused
        assert listed[0]["count"] >= 1 and listed[0]["reason"] == "not_allowlisted", refused
        assert refused["bound"] == 64 and refused["learn"], refused
        open_page(browser, "access")
        row = f"#tinyderp-refused tr[data-key='{stranger}']"
        page.wait_for_selector(row, timeout=30000)
        cells = page.locator(f"{row} td").all_inner_texts()
        assert cells[1] == "127.0.0.1" and cells[2] == "not_allowlisted", cells
        assert int(cells[4]) >= 1, cells
        shot(luci, page, "access")
        page.click(f"{row} button")
        r.wait_for(lambda: stranger in (command(r) or []), 30,
                   "the allowed key on the instance's command line")
        r.wait_for(lambda: client(r, derp_client, "relay", RELAY, "22", "21").returncode == 0,
                   30, "the once refused key relays")
        page.wait_for_selector(row, state="detached", timeout=30000)
        assert browser.take_errors() == []

    def test_mesh_peer_listed(self, luci, browser):
        """a second relay (our host build, which has the dialer) meshing in is listed"""
        r, page = luci, browser.page
        host_bin = os.environ.get("TINYDERP_HOST_BIN")
        if not host_bin or not os.access(host_bin, os.X_OK):
            pytest.skip("no host tinyderp build (TINYDERP_HOST_BIN) to act as the mesh peer")
        mesh_key = "5a" * 32
        r.put("/etc/tinyderp/mesh.key", mesh_key + "\n", mode=0o600)
        r.sh("chown tinyderp:tinyderp /etc/tinyderp/mesh.key 2>/dev/null || "
             "chmod 644 /etc/tinyderp/mesh.key")
        r.sh("uci set tinyderp.main.mesh_psk_file=/etc/tinyderp/mesh.key; uci commit tinyderp; "
             "reload_config")
        r.wait_for(lambda: "--mesh-psk-file" in (command(r) or []), 30, "mesh key on the relay")
        open_page(browser, "status")
        page.wait_for_function(
            "() => (document.getElementById('tinyderp-mesh')||{}).textContent == 'none'",
            timeout=30000)
        state = tempfile.mkdtemp(prefix="luci-mesh-peer-")
        keyfile = os.path.join(state, "mesh.key")
        with open(keyfile, "w") as f:
            f.write(mesh_key + "\n")
        os.chmod(keyfile, 0o600)
        peer = r.host_popen([host_bin, "--addr", "127.0.0.1:9443", "--stun-port", "-1",
                             "--hostname", "peer.test", "--state-dir", state,
                             "--mesh-psk-file", keyfile, "--mesh-with", RELAY,
                             "--mesh-pin", f"127.0.0.1={cert_pin(r)}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # The router's relay lists the peer's mesh client (its plugin data) ...
            page.wait_for_selector("#tinyderp-mesh .tinyderp-mesh-client", timeout=30000)
            text = page.inner_text("#tinyderp-mesh")
            assert "from 127.0.0.1:" in text, text
            st = json.loads(r.sh("ubus call luci.tinyderp status").stdout)
            clients = st["mesh"]["clients"]
            assert len(clients) == 1 and clients[0]["watching"], st["mesh"]
            assert st["mesh"]["key_configured"] and st["mesh"]["peers"] == [], st["mesh"]
            # ... and the peer's own dialer reports the router as connected.
            out = subprocess.run([host_bin, "status", "--json", "--state-dir", state],
                                 capture_output=True, text=True, timeout=20)
            assert out.returncode == 0, out.stderr
            peers = json.loads(out.stdout)["mesh"]["peers"]
            assert [(p["peer"], p["connected"]) for p in peers] == [(RELAY, True)], peers
            shot(luci, page, "status-mesh")
        finally:
            peer.terminate()
            try:
                peer.wait(timeout=15)
            except subprocess.TimeoutExpired:
                peer.kill()
        page.wait_for_function(
            "() => (document.getElementById('tinyderp-mesh')||{}).textContent == 'none'",
            timeout=30000)
        r.sh("uci delete tinyderp.main.mesh_psk_file; uci commit tinyderp; reload_config")
        r.wait_for(lambda: command(r) is not None and "--mesh-psk-file" not in command(r), 30,
                   "the relay restarted without the mesh key")
        assert browser.take_errors() == []

    def test_plugin_status_and_refusals(self, luci):
        """the plugin's status has the running relay's pin; it refuses bad actions and keys"""
        r = luci

        def status():
            return json.loads(r.sh("ubus call luci.tinyderp status").stdout)
        # Just restarted (the mesh scenario): the status socket may take a moment.
        r.wait_for(lambda: status().get("pin") == cert_pin(r) and status().get("metrics"), 20,
                   "pin and counters in the plugin's status")
        st = status()
        assert st["running"] and (st["version"] or "").startswith("tinyderp "), st
        assert len(st["snippets"]) == 4 and st["mesh"]["clients"] == [], st
        out = json.loads(r.sh("ubus call luci.tinyderp control '{\"action\":\"reboot\"}'").stdout)
        assert out.get("error"), "the plugin must refuse actions other than start/stop/restart"
        out = json.loads(r.sh("ubus call luci.tinyderp allow '{\"key\":\"nodekey:12\"}'").stdout)
        assert out.get("error"), "the plugin must refuse a malformed key"
        assert "nodekey:12" not in r.sh("uci -q get tinyderp.main.allowed_key", check=False).stdout

    def test_stop_and_start_buttons(self, luci, browser):
        """the status page's Stop and Start buttons stop and start the service"""
        r, page = luci, browser.page
        open_page(browser, "status")
        page.click("#tinyderp-stop")
        r.wait_for(lambda: not r.running(), 30, "stopped")
        page.wait_for_function(
            "() => /Stopped/.test((document.getElementById('tinyderp-state')||{}).textContent)",
            timeout=30000)
        page.click("#tinyderp-start")
        r.wait_for(lambda: command(r) is not None, 30, "started again")
        page.wait_for_function(
            "() => /Running/.test((document.getElementById('tinyderp-state')||{}).textContent)",
            timeout=30000)
        assert browser.take_errors() == []
