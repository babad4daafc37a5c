"""tinyderp's packages, init script and UCI options on OpenWrt's real userland.

Each module boots one router (procd as PID 1 in namespaces of its own) and runs its
scenarios in order on it; see conftest.py for the fixtures and router.py for the system.
The option table is tests/openwrt/options.json (generated from the flag definitions).
"""

import json
import shlex
import os
import re
import subprocess
import time

import pytest

from conftest import REPO, apk_path, ipk_path

OPTIONS = json.load(open(os.path.join(os.path.dirname(__file__), "options.json")))
INIT = open(os.path.join(REPO, "init.d", "tinyderp")).read()
# Options the init script's validation list knows (the rest never reach the binary yet).
_m = re.search(r"validate_section_tinyderp\(\)\s*\{(.*?)\n\}", INIT, re.S)
INIT_OPTIONS = set(re.findall(r"'([a-z_0-9]+):", _m.group(1))) if _m else set()
# Whether the init script runs the binary's own validation before starting an instance.
INIT_RUNS_VALIDATE = bool(re.search(r'"\$PROG" validate', INIT))
RELAY = "127.0.0.1:8443"


# ---- helpers ----
def uci(r, *cmds):
    r.sh("; ".join(f"uci {c}" for c in cmds) + "; uci commit tinyderp")


def reload_config(r):
    r.sh("reload_config")


def command(r, instance="main"):
    inst = r.running().get(instance)
    return inst.get("command") if inst else None


def wait_running(r, pred=lambda cmd: True, timeout=15, what="instance"):
    r.wait_for(lambda: command(r) is not None and pred(command(r)), timeout, what)
    return command(r)


def wait_stopped(r, timeout=15):
    r.wait_for(lambda: not r.running(), timeout, "no running instance")


def daemon_cmdlines(r):
    """{pid: command line} of the relay processes (in the router's PID namespace)."""
    out = r.sh("for p in $(pidof tinyderp); do "
               "echo \"$p $(tr '\\0' ' ' </proc/$p/cmdline)\"; done", check=False).stdout
    procs = {}
    for line in out.splitlines():
        pid, _, cmd = line.partition(" ")
        if cmd.startswith("/usr/sbin/tinyderp "):
            procs[int(pid)] = cmd
    return procs


def wait_daemon(r, needle="", timeout=20):
    """Waits until exactly one relay process runs and its command line holds `needle`."""
    def ok():
        procs = daemon_cmdlines(r)
        return len(procs) == 1 and needle in next(iter(procs.values()))
    r.wait_for(ok, timeout, f"one relay process with {needle!r}")
    return next(iter(daemon_cmdlines(r)))


def daemon_pid(r):
    """PID (in the router's PID namespace) of the tinyderp process, jailed or not."""
    # A jailed instance shows two: ujail (named after the service) and the relay itself.
    out = r.sh("for p in $(pidof tinyderp); do "
               "tr '\\0' ' ' </proc/$p/cmdline | grep -q '^/usr/sbin/tinyderp ' && echo $p; "
               "done", check=False).stdout.split()
    return int(out[0]) if out else None


def status(r, pid):
    fields = {}
    for line in r.sh(f"cat /proc/{pid}/status").stdout.splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def client(r, derp_client, *args, timeout=30):
    return r.host_net([derp_client, *args], capture_output=True, text=True, timeout=timeout)


def pubkey(derp_client, seed):
    return subprocess.run([derp_client, "pubkey", str(seed)], capture_output=True, text=True,
                          check=True).stdout.strip()


def state_files(r):
    key = r.sh("cat /etc/tinyderp/derper.key", check=False).stdout
    certs = r.sh("cat /etc/tinyderp/*.crt 2>/dev/null", check=False).stdout
    return key, certs


def baseline(r):
    """Only `enabled '1'` set: the shipped defaults otherwise."""
    r.sh("uci -q delete tinyderp.main; uci set tinyderp.main=tinyderp; "
         "uci set tinyderp.main.enabled=1; uci commit tinyderp")
    reload_config(r)
    return wait_running(r, lambda c: "--addr" in c, what="baseline instance")


def installed_common(r):
    """Checks shared by opkg and apk installs: user, rc.d link, service, nothing running."""
    assert "tinyderp:" in r.sh("cat /etc/passwd").stdout, "user tinyderp not created"
    links = r.sh("ls /etc/rc.d/").stdout.split()
    assert "S95tinyderp" in links and "K10tinyderp" in links, f"service not enabled: {links}"
    svc = r.services(verbose=True).get("tinyderp")
    assert svc is not None, "service not registered with procd"
    assert svc.get("triggers"), "no triggers registered"
    assert not r.running(), "an instance runs while enabled is '0'"
    assert r.sh("uci get tinyderp.main.enabled").stdout.strip() == "0"


# ---- OpenWrt 24.10 with opkg ----
class TestOpkg2410:
    def test_opkg_install(self, router24, dist):
        """24.10 opkg install: user, enabled, registered, nothing started (enabled 0)"""
        r = router24
        r.put("/tmp/tinyderp.ipk", open(ipk_path(dist), "rb").read())
        r.sh("opkg install /tmp/tinyderp.ipk")
        installed_common(r)
        # reload_config only sees changes of configs it saw before: prime it once.
        reload_config(r)

    def test_enable_and_relay(self, router24, derp_client):
        """enable with uci + reload_config starts it; crate client relays through it"""
        r = router24
        uci(r, "set tinyderp.main.enabled=1")
        reload_config(r)
        cmd = wait_running(r)
        assert cmd[0] == "/usr/sbin/tinyderp" and "--addr" in cmd
        r.wait_for(lambda: client(r, derp_client, "relay", RELAY, "1", "2").returncode == 0,
                   20, "client relay")

    def test_respawn_after_kill9(self, router24):
        """procd respawns the relay after kill -9"""
        r = router24
        pid = daemon_pid(r)
        assert pid
        r.sh(f"kill -9 {pid}")
        r.wait_for(lambda: daemon_pid(r) not in (None, pid), 20, "respawned relay")

    def test_wan_ifup_restarts(self, router24):
        """a WAN interface event (as netifd notifies procd) restarts the relay"""
        r = router24
        pid = daemon_pid(r)
        r.sh("ubus call service event '{\"type\":\"interface.update\","
             "\"data\":{\"interface\":\"lan\"}}'")
        time.sleep(3)
        assert daemon_pid(r) == pid, "an event for lan restarted the relay"
        r.sh("ubus call service event '{\"type\":\"interface.update\","
             "\"data\":{\"interface\":\"wan\"}}'")
        r.wait_for(lambda: daemon_pid(r) not in (None, pid), 20, "restart after wan event")

    def test_reload_keeps_clients(self, router24, derp_client):
        """/etc/init.d/tinyderp reload reloads the certificate, clients stay connected"""
        r = router24
        pid = daemon_pid(r)
        p = r.host_popen([derp_client, "hold", RELAY, "3", "4"], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "ready"
            mark = r.log_mark()
            r.sh("/etc/init.d/tinyderp reload")
            r.wait_for(lambda: "certificate reloaded" in r.log_since(mark), 10,
                       "certificate reload log line")
            assert daemon_pid(r) == pid, "reload restarted the relay"
            out, err = p.communicate("go\n", timeout=20)
            assert p.returncode == 0 and "relayed" in out, err
        finally:
            if p.poll() is None:
                p.kill()

    def test_allowed_key(self, router24, derp_client):
        """list allowed_key: a key on the list relays, one outside is refused"""
        r = router24
        if "allowed_key" not in INIT_OPTIONS:
            pytest.xfail("allowed_key not in init.d/tinyderp yet (options branch)")
        uci(r, f"add_list tinyderp.main.allowed_key={pubkey(derp_client, 5)}",
            f"add_list tinyderp.main.allowed_key={pubkey(derp_client, 6)}")
        reload_config(r)
        wait_running(r, lambda c: "--allowed-key" in c)
        r.wait_for(lambda: client(r, derp_client, "relay", RELAY, "5", "6").returncode == 0,
                   20, "allowed keys relay")
        assert client(r, derp_client, "relay", RELAY, "5", "7").returncode == 2
        baseline(r)

    def test_max_clients(self, router24, derp_client):
        """max_clients 2: a third client is refused"""
        r = router24
        if "max_clients" not in INIT_OPTIONS:
            pytest.xfail("max_clients not in init.d/tinyderp yet (options branch)")
        uci(r, "set tinyderp.main.max_clients=2")
        reload_config(r)
        wait_running(r, lambda c: "--max-clients" in c)
        time.sleep(1)
        out = client(r, derp_client, "count", RELAY, "3", "20").stdout.strip()
        assert out == "2"
        baseline(r)

    @pytest.mark.parametrize("opt", OPTIONS, ids=[o["uci"] for o in OPTIONS])
    def test_option_valid(self, router24, opt):
        """every option: a valid value reaches the command line after reload_config"""
        r = router24
        if opt["uci"] not in INIT_OPTIONS:
            pytest.xfail(f"{opt['uci']} is not in init.d/tinyderp's option list (options branch)")
        baseline(r)
        verb = "add_list" if opt["kind"] == "list" else "set"
        # Companion options the binary needs alongside this one (the table's "with").
        companions = [f"set tinyderp.main.{k}={shlex.quote(v)}" for k, v in opt.get("with", {}).items()]
        uci(r, f"{verb} tinyderp.main.{opt['uci']}={shlex.quote(opt['valid'])}", *companions)
        reload_config(r)
        if opt["kind"] == "switch":
            def has(c):
                return opt["flag"] in c
        else:
            def has(c):
                return any(c[i] == opt["flag"] and c[i + 1] == opt["valid"]
                           for i in range(len(c) - 1)) or f"{opt['flag']}={opt['valid']}" in c
        # The instance procd runs (or respawns: mesh_with's example key file does not
        # exist on the test router) carries the flag.
        try:
            r.wait_for(lambda: has(r.instances().get("main", {}).get("command", [])), 15,
                       f"{opt['flag']} on the command line")
        finally:
            baseline(r)

    @pytest.mark.parametrize("opt", [o for o in OPTIONS if o.get("invalid") is not None],
                             ids=[o["uci"] for o in OPTIONS if o.get("invalid") is not None])
    def test_option_invalid(self, router24, opt, request):
        """every option: an invalid value is refused, logread names it, nothing runs"""
        r = router24
        if opt["uci"] not in INIT_OPTIONS:
            pytest.xfail(f"{opt['uci']} is not in init.d/tinyderp's option list (options branch)")
        baseline(r)
        verb = "add_list" if opt["kind"] == "list" else "set"
        mark = r.log_mark()
        uci(r, f"{verb} tinyderp.main.{opt['uci']}={shlex.quote(opt['invalid'])}")
        reload_config(r)
        try:
            try:
                wait_stopped(r, timeout=8)
            except TimeoutError:
                if not INIT_RUNS_VALIDATE:
                    pytest.xfail("an instance starts: init.d/tinyderp does not run `tinyderp "
                                 "validate` yet (options branch), only the binary rejects it")
                raise
            try:
                r.wait_for(lambda: opt["uci"] in r.log_since(mark), 5,
                           "a log line naming " + opt["uci"])
            except TimeoutError:
                if not INIT_RUNS_VALIDATE:
                    pytest.xfail("refused, but no log line names the option: validate_data's "
                                 "message does not reach logread (options branch)")
                raise
        finally:
            baseline(r)

    def test_ujail_low_port(self, router24):
        """port below 1024: ujail, user tinyderp, only CAP_NET_BIND_SERVICE, NoNewPrivs 1"""
        r = router24
        uci(r, "set tinyderp.main.addr=:443", "set tinyderp.main.stun_port=-1")
        reload_config(r)
        wait_running(r, lambda c: ":443" in " ".join(c))
        st = status(r, wait_daemon(r, "--addr :443 "))
        uid = r.sh("id -u tinyderp").stdout.strip()
        assert st["Uid"].split()[0] == uid
        assert int(st["CapEff"], 16) == 1 << 10, st["CapEff"]
        assert int(st["CapBnd"], 16) == 1 << 10, st["CapBnd"]
        assert st["NoNewPrivs"] == "1"
        r.wait_for(lambda: ":443 " in r.host_net(["ss", "-ltnH"], capture_output=True,
                                                  text=True).stdout, 10, "listening on 443")
        baseline(r)

    def test_jailed_high_port(self, router24):
        """high port with procd-ujail: jailed, user tinyderp, no capabilities, NoNewPrivs 1"""
        r = router24
        baseline(r)
        st = status(r, wait_daemon(r, "--addr :8443 "))
        assert st["Uid"].split()[0] == r.sh("id -u tinyderp").stdout.strip()
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
        assert st["NoNewPrivs"] == "1"

    def test_unjailed_without_ujail(self, router24):
        """without procd-ujail: user tinyderp, no capabilities; a low port is refused"""
        r = router24
        r.sh("mv /sbin/ujail /sbin/ujail.off")
        try:
            r.sh("/etc/init.d/tinyderp restart")
            wait_running(r)
            # The jailed relay of before the restart may still be exiting: wait for a
            # relay that procd started directly (unjailed: its parent is procd).
            found = {}

            def unjailed():
                pid = wait_daemon(r, "--addr :8443 ")
                found.update(status(r, pid))
                return found.get("PPid") == "1"
            r.wait_for(unjailed, 20, "an unjailed relay (child of procd)")
            st = found
            assert st["Uid"].split()[0] == r.sh("id -u tinyderp").stdout.strip()
            assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
            # procd applies no_new_privs only through ujail: documented, not claimed.
            assert st["NoNewPrivs"] == "0"
            mark = r.log_mark()
            uci(r, "set tinyderp.main.addr=:443")
            reload_config(r)
            wait_stopped(r)
            r.wait_for(lambda: "procd-ujail" in r.log_since(mark), 10,
                       "log line asking for procd-ujail")
        finally:
            r.sh("mv /sbin/ujail.off /sbin/ujail")
            baseline(r)

    def test_firewall4(self, router24):
        """fw4 renders and loads DERP/STUN rules from service data, drops them on stop"""
        r = router24
        baseline(r)
        data = json.loads(r.sh("ubus call service get_data '{\"type\":\"firewall\"}'").stdout)
        rules = data["tinyderp"]["main"]["firewall"]
        assert {(x["proto"], x["dest_port"]) for x in rules} == {("tcp", "8443"), ("udp", "3478")}
        printed = r.sh("fw4 print").stdout
        assert "tcp dport 8443" in printed and "udp dport 3478" in printed
        r.sh("fw4 check")
        r.sh("fw4 start")
        ruleset = r.sh("nft list ruleset").stdout
        assert re.search(r"tcp dport 8443 .*ubus:tinyderp\[main\]", ruleset), ruleset
        r.sh("/etc/init.d/tinyderp stop")
        wait_stopped(r)
        r.sh("fw4 reload")
        ruleset = r.sh("nft list ruleset").stdout
        assert "tinyderp" not in ruleset
        r.sh("/etc/init.d/tinyderp start")
        wait_running(r)
        uci(r, "set tinyderp.main.open_firewall=0")
        reload_config(r)
        r.wait_for(lambda: "firewall" not in json.dumps(json.loads(r.sh(
            "ubus call service get_data '{\"type\":\"firewall\"}'").stdout).get("tinyderp", {})),
            15, "no firewall data with open_firewall 0")
        r.sh("fw4 reload")
        assert "tinyderp" not in r.sh("nft list ruleset").stdout
        r.sh("fw4 stop", check=False)
        baseline(r)

    def test_ddns_fallback(self, router24):
        """no hostname: the first enabled ddns-scripts service's lookup_host is used"""
        r = router24
        r.put("/etc/config/ddns", """
config ddns 'global'
\toption ddns_dateformat '%F %R'

config service 'off'
\toption enabled '0'
\toption lookup_host 'off.example.net'
\toption domain 'off.example.net'

config service 'myddns_ipv4'
\toption enabled '1'
\toption lookup_host 'home.example.net'
\toption domain 'home.example.net'
\toption service_name 'duckdns.org'
\toption use_ipv6 '0'
""", 0o600)
        assert r.sh("uci get ddns.myddns_ipv4.lookup_host").stdout.strip() == "home.example.net"
        r.sh("/etc/init.d/tinyderp restart")
        cmd = wait_running(r, lambda c: "--hostname" in c)
        assert cmd[cmd.index("--hostname") + 1] == "home.example.net"
        r.sh("rm /etc/config/ddns")
        r.sh("/etc/init.d/tinyderp restart")
        wait_running(r, lambda c: "--hostname" not in c)

    def test_upgrade_keeps_config_and_state(self, router24, dist):
        """opkg upgrade keeps a changed /etc/config/tinyderp and the key + certificate"""
        r = router24
        baseline(r)
        uci(r, "set tinyderp.main.region_code=lab")
        reload_config(r)
        wait_running(r, lambda c: "lab" in c)
        r.wait_for(lambda: state_files(r)[0] and state_files(r)[1], 10, "key and certificate")
        key, cert = state_files(r)
        r.sh("opkg install --force-reinstall /tmp/tinyderp.ipk")
        assert r.sh("uci get tinyderp.main.region_code").stdout.strip() == "lab"
        assert state_files(r) == (key, cert)
        wait_running(r)

    def test_sysupgrade_lists(self, router24):
        """base-files' sysupgrade -l lists /etc/config/tinyderp and the state dir"""
        r = router24
        listed = r.sh("sysupgrade -l").stdout.split()
        assert "/etc/config/tinyderp" in listed
        assert any(p.startswith("/etc/tinyderp/") for p in listed), listed

    def test_remove(self, router24):
        """opkg remove stops the relay and removes service, files and rc.d link"""
        r = router24
        wait_running(r)
        r.sh("opkg remove tinyderp")
        wait_stopped(r)
        assert "tinyderp" not in r.services()
        assert "tinyderp" not in r.sh("ls /etc/rc.d/").stdout
        assert r.sh("test -e /usr/sbin/tinyderp", check=False).returncode != 0
        assert r.sh("test -e /etc/init.d/tinyderp", check=False).returncode != 0


# ---- OpenWrt 25.12 with apk ----
class TestApk2512:
    def test_apk_add(self, router25, dist):
        """25.12 apk add: user, enabled, registered, nothing started (enabled 0)"""
        r = router25
        r.put("/tmp/tinyderp.apk", open(apk_path(dist), "rb").read())
        r.sh("apk add --initdb --allow-untrusted --no-network /tmp/tinyderp.apk")
        installed_common(r)
        reload_config(r)

    def test_enable_and_relay(self, router25, derp_client):
        """25.12: enable with uci + reload_config; crate client relays through it"""
        r = router25
        uci(r, "set tinyderp.main.enabled=1")
        reload_config(r)
        wait_running(r)
        r.wait_for(lambda: client(r, derp_client, "relay", RELAY, "1", "2").returncode == 0,
                   20, "client relay")

    def test_upgrade_keeps_config_and_state(self, router25):
        """25.12: apk reinstall keeps a changed config and the key + certificate"""
        r = router25
        uci(r, "set tinyderp.main.region_code=lab")
        reload_config(r)
        wait_running(r, lambda c: "lab" in c)
        r.wait_for(lambda: state_files(r)[0] and state_files(r)[1], 10, "key and certificate")
        key, cert = state_files(r)
        r.sh("apk fix --allow-untrusted --no-network --reinstall tinyderp "
             "|| apk add --allow-untrusted --no-network --force-overwrite /tmp/tinyderp.apk")
        assert r.sh("uci get tinyderp.main.region_code").stdout.strip() == "lab"
        assert state_files(r) == (key, cert)

    def test_sysupgrade_lists(self, router25):
        """25.12: sysupgrade -l lists /etc/config/tinyderp and the state dir"""
        r = router25
        listed = r.sh("sysupgrade -l").stdout.split()
        assert "/etc/config/tinyderp" in listed
        assert any(p.startswith("/etc/tinyderp/") for p in listed), listed

    def test_remove(self, router25):
        """25.12: apk del stops the relay and removes service and rc.d link"""
        r = router25
        r.sh("apk del --no-network tinyderp")
        wait_stopped(r)
        assert "tinyderp" not in r.services()
        assert "tinyderp" not in r.sh("ls /etc/rc.d/").stdout
        assert r.sh("test -e /usr/sbin/tinyderp", check=False).returncode != 0
