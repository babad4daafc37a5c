#!/usr/bin/env python3
"""Runs init.d/tinyderp under busybox ash against the models in tests/package/model
(rc.common, functions.sh, procd.sh, jshn.sh, uci.sh, uci, validate_data, ubus) for a
table of UCI files, and checks the procd message it sends: instance command line,
respawn, user, capabilities/jail, firewall data, triggers, validation schema; invalid
values must give a log line and no instance.

The options come from tests/openwrt/options.json (generated from the binary's option
table): every option's valid example must reach the command line, every invalid one must
start nothing and leave a log line naming it. The script asks the real binary
(`tinyderp validate`), so a built one is needed: $TINYDERP_BIN, dist/x86_64/tinyderp or
target/{release,debug}/tinyderp; without one every case is reported SKIPPED.

Prints one `ok NAME` / `FAIL NAME: why` line per case and a final `N passed, N failed`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MODEL = os.path.join(HERE, "model")
INIT = os.path.join(ROOT, "init.d", "tinyderp")
CONFIG = os.path.join(ROOT, "init.d", "tinyderp.config")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
OPTIONS = json.load(open(os.path.join(ROOT, "tests", "openwrt", "options.json")))
# Options only the init script reads (not flags of the binary).
SCRIPT_OPTIONS = {"enabled", "open_firewall", "user", "meta_cert"}


def find_binary():
    """A tinyderp binary that runs here, or None."""
    candidates = [os.environ.get("TINYDERP_BIN", "")]
    dist = os.environ.get("TINYDERP_DIST", os.path.join(ROOT, "dist"))
    candidates.append(os.path.join(dist, "x86_64", "tinyderp"))
    for target in (os.environ.get("CARGO_TARGET_DIR", ""), os.path.join(ROOT, "target")):
        if target:
            candidates += [os.path.join(target, "release", "tinyderp"), os.path.join(target, "debug", "tinyderp")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            try:
                if subprocess.run([path, "--version"], capture_output=True, timeout=10).returncode == 0:
                    return path
            except OSError:
                continue
    return None


TINYDERP = find_binary()

PASSWD = "root:x:0:0:root:/root:/bin/ash\ntinyderp:x:8443:8443:tinyderp:/var/run/tinyderp:/bin/false\n"

BASE_CMD = ["/usr/sbin/tinyderp", "--addr", ":8443", "--stun-port", "3478", "--http-port", "-1",
            "--state-dir", "/etc/tinyderp"]


def base_cmd(hostname):
    """BASE_CMD with --hostname in its place (after --http-port, as in the option table)."""
    return BASE_CMD[:7] + ["--hostname", hostname] + BASE_CMD[7:]


def fw_rule(name, proto, port, family=None):
    rule = {"type": "rule", "name": name, "src": "wan", "proto": proto, "dest_port": str(port)}
    if family:
        rule["family"] = family
    rule["target"] = "ACCEPT"
    return rule


DEFAULT_FW = {"firewall": [fw_rule("Allow-tinyderp-main-derp", "tcp", 8443),
                           fw_rule("Allow-tinyderp-main-stun", "udp", 3478)]}


def instance(command, **extra):
    inst = {"command": command, "respawn": ["3600", "5", "5"], "stdout": True, "stderr": True,
            "limits": {"nofile": "4096 4096"}, "user": "tinyderp", "data": DEFAULT_FW}
    inst.update(extra)
    return {k: v for k, v in inst.items() if v is not None}


class Run:
    """One execution of the init script; messages are the decoded ubus calls."""

    def __init__(self, rc, stdout, stderr, messages, actions):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        self.messages, self.actions = messages, actions

    def service_set(self):
        sets = [m for obj, method, m in self.messages if obj == "service" and method == "set"]
        assert len(sets) == 1, f"expected one service set, got {len(sets)}: {self.messages}"
        return sets[0]

    def instances(self):
        return self.service_set()["instances"]

    def errors(self):
        return [a for a in self.actions if a.startswith("logger -t tinyderp -p daemon.err ")]


def run_init(config, action="start", extra_files=None, ujail=False, passwd=PASSWD, prog=None):
    tmp = tempfile.mkdtemp(prefix="tinyderp-init-")
    try:
        confdir = os.path.join(tmp, "config")
        os.makedirs(confdir)
        os.makedirs(os.path.join(tmp, "root", "etc"))
        os.makedirs(os.path.join(tmp, "out"))
        if config is not None:
            with open(os.path.join(confdir, "tinyderp"), "w") as f:
                f.write(config)
        for name, text in (extra_files or {}).items():
            with open(os.path.join(confdir, name), "w") as f:
                f.write(text)
        with open(os.path.join(tmp, "root", "etc", "passwd"), "w") as f:
            f.write(passwd)
        # The script is run from a copy named like on the router.
        script = os.path.join(tmp, "tinyderp")
        shutil.copy(INIT, script)
        env = {
            "PATH": os.path.join(MODEL, "bin") + ":/usr/bin:/bin",
            "MODEL_DIR": MODEL,
            "MODEL_ROOT": os.path.join(tmp, "root"),
            "UCI_CONFIG_DIR": confdir,
            "UBUS_LOG": os.path.join(tmp, "out", "ubus"),
            "TEST_OUT": os.path.join(tmp, "out"),
            "RC_TEST_HOOK": os.path.join(HERE, "hook.sh"),
            "TEST_UJAIL": "1" if ujail else "0",
            "TEST_TINYDERP": TINYDERP or "/nonexistent/tinyderp",
        }
        if prog is not None:
            env["TEST_PROG"] = prog
        p = subprocess.run([BUSYBOX, "ash", os.path.join(MODEL, "etc", "rc.common"), script, action],
                           env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
        messages = []
        ubus_log = os.path.join(tmp, "out", "ubus")
        if os.path.exists(ubus_log):
            for line in open(ubus_log):
                obj, method, payload = line.rstrip("\n").split("\t", 2)
                messages.append((obj, method, json.loads(payload)))
        actions_path = os.path.join(tmp, "out", "actions")
        actions = open(actions_path).read().splitlines() if os.path.exists(actions_path) else []
        return Run(p.returncode, p.stdout, p.stderr, messages, actions)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def eq(actual, expected, what):
    assert actual == expected, f"{what}:\n  got      {json.dumps(actual, sort_keys=True)}\n  expected {json.dumps(expected, sort_keys=True)}"


def section(*lines, name="main"):
    return f"config tinyderp '{name}'\n" + "".join(f"\t{line}\n" for line in lines)


# ---- cases -------------------------------------------------------------------------

def case_shipped_config_is_inert():
    r = run_init(open(CONFIG).read())
    eq(r.rc, 0, "exit code")
    eq(r.instances(), {}, "instances")
    eq(r.errors(), [], "error log lines")


def case_shipped_config_documents_every_option():
    documented = set()
    for line in open(CONFIG):
        words = line.strip().lstrip("#").split()
        if len(words) >= 2 and words[0] in ("option", "list"):
            documented.add(words[1])
    missing = ({o["uci"] for o in OPTIONS} | SCRIPT_OPTIONS) - documented
    eq(sorted(missing), [], "options missing from the shipped config")


def case_shipped_values_start_the_relay():
    # The shipped file's commented values, uncommented together, start the relay. Left out:
    # options that need another one (their own cases set it), the ones no value makes valid
    # in this build (not in options.json), and rate_config, which replaces client_rate.
    plain = {o["uci"]: o for o in OPTIONS if not o["with"] and o["uci"] != "rate_config"}
    lines = [x for x in shipped_lines() if x.split()[1] in plain]
    eq(len(lines), len(plain), "every such option has a shipped line")
    r = run_init(section("option enabled '1'", *lines))
    eq(r.errors(), [], "error log lines")
    cmd = r.instances()["main"]["command"]
    for line in lines:
        name, value = line.split()[1], line.split(" ", 2)[2].strip("'")
        entry = plain[name]
        if entry["kind"] != "switch":
            assert (entry["flag"], value) in list(zip(cmd, cmd[1:])), f"{entry['flag']} {value}: {cmd}"
        elif value == "1":
            assert entry["flag"] in cmd, cmd
        else:
            assert entry["flag"] not in cmd, cmd


def shipped_lines():
    lines = []
    for line in open(CONFIG):
        s = line.strip()
        if s.startswith("#option ") or s.startswith("#list "):
            lines.append(s[1:])
    return [x for x in lines if not x.startswith("option enabled ")]


def case_minimal_enabled():
    r = run_init(section("option enabled '1'", "option hostname 'derp.example.net'"))
    eq(r.rc, 0, "exit code")
    eq(r.instances(), {"main": instance(base_cmd("derp.example.net"))}, "instances")
    eq(r.actions, ["mkdir -p -m 0700 /etc/tinyderp", "chmod 0700 /etc/tinyderp",
                   "chown -R tinyderp /etc/tinyderp"], "state dir actions")


def case_service_triggers_and_validation():
    r = run_init(section("option enabled '1'"))
    msg = r.service_set()
    eq(msg["name"], "tinyderp", "service name")
    reload = ["config.change", ["if", ["eq", "package", "tinyderp"],
                                ["run_script", "/etc/init.d/tinyderp", "reload"]], 1000]
    wan_up = [["interface.*.up", ["if", ["eq", "interface", iface],
                                  ["run_script", "/etc/init.d/tinyderp", "restart"]], 1000]
              for iface in ("wan", "wan6")]
    eq(msg["triggers"], [reload] + wan_up, "triggers")
    schema = msg["validate"][0]
    eq((schema["package"], schema["type"]), ("tinyderp", "tinyderp"), "validate package/type")
    eq(schema["data"]["stun_port"], "range(-1,65535)", "stun_port datatype")
    eq(schema["data"]["extra_ip"], "ipaddr", "extra_ip datatype")
    # every option of the table and the script-only ones are validated
    expected_options = {o["uci"] for o in OPTIONS} | SCRIPT_OPTIONS
    eq(sorted(expected_options - set(schema["data"])), [], "options missing from the validation")
    # fw4 is told after start (older fw4 does not watch service data)
    eq([(o, m, p) for o, m, p in r.messages if m == "event"],
       [("service", "event", {"type": "config.change", "data": {"package": "firewall"}})], "events")


def uci_lines(entry, value):
    keyword = "list" if entry["kind"] == "list" else "option"
    value = value.replace("'", "'\\''")
    return [f"{keyword} {entry['uci']} '{value}'"] + [f"option {k} '{v}'" for k, v in entry["with"].items()]


def make_option_valid_case(entry):
    # A valid value reaches the command line: `--flag VALUE`, or a bare `--flag` for a switch.
    def case():
        r = run_init(section("option enabled '1'", *uci_lines(entry, entry["valid"])))
        eq(r.errors(), [], "error log lines")
        cmd = r.instances()["main"]["command"]
        if entry["kind"] == "switch":
            assert entry["flag"] in cmd, cmd
        else:
            pairs = list(zip(cmd, cmd[1:]))
            assert (entry["flag"], entry["valid"]) in pairs, cmd
    case.__name__ = f"case_valid_{entry['uci']}"
    return case


def make_option_invalid_case(entry):
    # An invalid value starts nothing, and a log line names the option.
    def case():
        r = run_init(section("option enabled '1'", *uci_lines(entry, entry["invalid"])))
        eq(r.instances(), {}, "instances")
        assert any(entry["uci"] in e for e in r.errors()), f"no log line naming {entry['uci']}: {r.errors()}"
    case.__name__ = f"case_invalid_option_{entry['uci']}"
    return case


def case_every_list_item_is_a_flag():
    key = next(o for o in OPTIONS if o["uci"] == "allowed_key")["valid"]
    other = "nodekey:" + "ab" * 32
    r = run_init(section("option enabled '1'", "option hostname 'home.example.net'", f"list allowed_key '{key}'",
                         f"list allowed_key '{other}'", "list metrics_allow '192.168.1.0/24'",
                         "list metrics_allow '::1'", "option max_clients '20'", "option log_refused_keys '1'",
                         "option client_rate '2M'", "option verify_clients 'on'"))
    eq(r.instances()["main"]["command"],
       base_cmd("home.example.net") + ["--client-rate", "2M", "--max-clients", "20",
                                       "--metrics-allow", "192.168.1.0/24", "--metrics-allow", "::1",
                                       "--allowed-key", key, "--allowed-key", other,
                                       "--verify-clients", "--log-refused-keys"], "command")


def case_old_meta_cert_spelling():
    r = run_init(section("option enabled '1'", "option meta_cert '0'"))
    eq(r.instances()["main"]["command"], BASE_CMD + ["--no-meta-cert"], "command")


def case_binary_error_names_the_uci_option():
    r = run_init(section("option enabled '1'", "option max_clients '2000000'"))
    eq(r.instances(), {}, "instances")
    eq(r.errors(), ["logger -t tinyderp -p daemon.err option max_clients: --max-clients: \"2000000\" is not a "
                    "client count (use 1-1000000, or 0 for no limit); not starting instance 'main'"], "log lines")


def case_low_ports_get_only_net_bind_in_a_jail():
    cfg = section("option enabled '1'", "option addr ':443'", "option stun_port '-1'",
                  "option http_port '80'", "option certmode 'manual'",
                  "option tls_cert '/etc/ssl/derp.crt'", "option tls_key '/etc/ssl/derp.key'")
    r = run_init(cfg, ujail=True)
    cmd = ["/usr/sbin/tinyderp", "--addr", ":443", "--stun-port", "-1", "--http-port", "80",
           "--state-dir", "/etc/tinyderp", "--certmode", "manual",
           "--tls-cert", "/etc/ssl/derp.crt", "--tls-key", "/etc/ssl/derp.key"]
    fw = {"firewall": [fw_rule("Allow-tinyderp-main-derp", "tcp", 443),
                       fw_rule("Allow-tinyderp-main-http", "tcp", 80)]}
    jail = {"name": "tinyderp", "log": True,
            "mount": {"/etc/tinyderp": "1", "/etc/ssl/derp.crt": "0", "/etc/ssl/derp.key": "0"}}
    eq(r.instances(), {"main": instance(cmd, capabilities="/etc/capabilities/tinyderp.json",
                                        jail=jail, data=fw, no_new_privs=True)}, "instances")
    caps = json.load(open(os.path.join(ROOT, "init.d", "tinyderp.capabilities.json")))
    for kind in ("bounding", "effective", "ambient", "permitted", "inheritable"):
        eq(caps[kind], ["CAP_NET_BIND_SERVICE"], f"capabilities {kind}")


def case_high_port_with_ujail_is_jailed_without_capabilities():
    # procd applies no_new_privs only through ujail (checked on real procd by tests/openwrt).
    r = run_init(section("option enabled '1'"), ujail=True)
    jail = {"name": "tinyderp", "log": True, "mount": {"/etc/tinyderp": "1"}}
    eq(r.instances(), {"main": instance(BASE_CMD, jail=jail, no_new_privs=True)}, "instances")


def case_low_port_without_ujail_is_refused():
    r = run_init(section("option enabled '1'", "option addr ':443'"))
    eq(r.instances(), {}, "instances")
    assert any("procd-ujail" in e for e in r.errors()), f"no log line about ujail: {r.actions}"


def case_stun_port_0_to_1023_counts_as_low():
    r = run_init(section("option enabled '1'", "option stun_port '53'"))
    eq(r.instances(), {}, "instances")
    assert r.errors(), "no error log line"


def case_ipv6_listen_address():
    r = run_init(section("option enabled '1'", "option addr '[::]:8443'"))
    inst = r.instances()["main"]
    eq(inst["command"][1:3], ["--addr", "[::]:8443"], "addr flag")
    eq(inst["data"], {"firewall": [fw_rule("Allow-tinyderp-main-derp", "tcp", 8443, "ipv6"),
                                   fw_rule("Allow-tinyderp-main-stun", "udp", 3478, "ipv6")]}, "firewall")


def case_ipv4_listen_address_family():
    r = run_init(section("option enabled '1'", "option addr '0.0.0.0:9443'", "option stun_port '-1'"))
    eq(r.instances()["main"]["data"],
       {"firewall": [fw_rule("Allow-tinyderp-main-derp", "tcp", 9443, "ipv4")]}, "firewall")


def case_hostname_from_first_enabled_ddns_service():
    ddns = ("config ddns 'global'\n\toption ddns_dateformat '%F %R'\n\n"
            "config service 'off'\n\toption enabled '0'\n\toption lookup_host 'old.example.org'\n\n"
            "config service 'nolookup'\n\toption enabled '1'\n\n"
            "config service 'myddns_ipv4'\n\toption enabled '1'\n\toption lookup_host 'home.dyn.example.com'\n\n"
            "config service 'later'\n\toption enabled '1'\n\toption lookup_host 'later.example.com'\n")
    r = run_init(section("option enabled '1'"), extra_files={"ddns": ddns})
    eq(r.instances(), {"main": instance(base_cmd("home.dyn.example.com"))}, "instances")
    assert any("home.dyn.example.com" in a and "daemon.info" in a for a in r.actions), r.actions


def case_explicit_hostname_wins_over_ddns():
    ddns = "config service 'a'\n\toption enabled '1'\n\toption lookup_host 'dyn.example.com'\n"
    r = run_init(section("option enabled '1'", "option hostname '203.0.113.9'"), extra_files={"ddns": ddns})
    eq(r.instances()["main"]["command"], base_cmd("203.0.113.9"), "command")


def case_no_hostname_without_ddns():
    r = run_init(section("option enabled '1'"))
    eq(r.instances()["main"]["command"], BASE_CMD, "command")


def case_respawn_defaults_from_system_config():
    system = "config system\n\toption hostname 'OpenWrt'\n\nconfig service\n\toption respawn_threshold '600'\n\toption respawn_timeout '10'\n\toption respawn_retry '0'\n"
    r = run_init(section("option enabled '1'"), extra_files={"system": system})
    eq(r.instances()["main"]["respawn"], ["600", "10", "0"], "respawn")


def case_reload_sends_sighup():
    r = run_init(section("option enabled '1'"), action="reload")
    methods = [(o, m) for o, m, _ in r.messages]
    eq(methods, [("service", "set"), ("service", "event"), ("service", "signal")], "ubus calls")
    eq(r.messages[2][2], {"name": "tinyderp", "signal": 1}, "signal message")


def case_stop_kills_the_service():
    r = run_init(section("option enabled '1'"), action="stop")
    eq([(o, m, p) for o, m, p in r.messages if m == "delete"],
       [("service", "delete", {"name": "tinyderp"})], "delete message")


def case_anonymous_section_gets_an_instance():
    r = run_init("config tinyderp\n\toption enabled '1'\n\toption stun_port '-1'\n")
    insts = r.instances()
    eq(len(insts), 1, "instance count")
    name = next(iter(insts))
    assert name.startswith("cfg"), name
    eq(insts[name]["data"]["firewall"][0]["name"], f"Allow-tinyderp-{name}-derp", "rule name")


def case_missing_user_is_refused():
    r = run_init(section("option enabled '1'", "option user 'derpuser'"))
    eq(r.instances(), {}, "instances")
    assert any("derpuser" in e for e in r.errors()), r.actions


def case_missing_config_file_starts_nothing():
    r = run_init(None)
    eq(r.rc, 0, "exit code")
    eq(r.instances(), {}, "instances")


INVALID = [
    ("enabled", "option enabled 'maybe'"),
    ("stun_port", "option stun_port '70000'"),
    ("stun_port_word", "option stun_port 'off'"),
    ("http_port", "option http_port '-2'"),
    ("hostname", "option hostname 'bad host!'"),
    ("extra_ip", "list extra_ip '192.0.2.300'"),
    ("extra_name", "list extra_name 'ok.example' \n\tlist extra_name 'not ok'"),
    ("extra_name_option_with_two", "option extra_name 'a.example b.example'"),
    ("certmode", "option certmode 'letsencrypt'"),
    ("meta_cert", "option meta_cert '2'"),
    ("region_id", "option region_id 'abc'"),
    ("public_derp_port", "option public_derp_port '0'"),
    ("public_ipv4", "option public_ipv4 '2001:db8::1'"),
    ("public_ipv6", "option public_ipv6 '198.51.100.1'"),
    ("metrics_allow", "list metrics_allow '10.0.0.0/33'"),
    ("log_level", "option log_level 'loud'"),
    ("verify_clients", "option verify_clients 'sometimes'"),
    ("addr_no_colon", "option addr '8443'"),
    ("addr_port_range", "option addr ':70000'"),
    ("addr_bare_ipv6", "option addr '::1:8443'"),
    ("addr_bad_ipv4", "option addr '300.1.1.1:8443'"),
    ("addr_hostname", "option addr 'router.lan:8443'"),
    ("tcp_keepalive", "option tcp_keepalive '10 minutes'"),
    ("tcp_write_timeout", "option tcp_write_timeout '2x'"),
    ("tcp_user_timeout", "option tcp_user_timeout '1.5.2s'"),
    ("tls_cert_without_key", "option certmode 'manual'\n\toption tls_cert '/etc/a.crt'"),
    ("state_dir_etc", "option state_dir '/etc'"),
    ("state_dir_root", "option state_dir '/'"),
    ("state_dir_relative", "option state_dir 'tinyderp'"),
    ("state_dir_dotdot", "option state_dir '/etc/tinyderp/../..'"),
    ("state_dir_trailing_slash_of_etc", "option state_dir '/etc/'"),
]


def make_invalid_case(name, line):
    def case():
        r = run_init(section("option enabled '1'", line))
        eq(r.instances(), {}, "instances")
        assert r.errors(), f"no error log line; actions={r.actions} stderr={r.stderr}"
    case.__name__ = f"case_invalid_{name}"
    return case


def make_valid_duration_case(value):
    def case():
        r = run_init(section("option enabled '1'", f"option tcp_write_timeout '{value}'"))
        eq(r.instances()["main"]["command"][-2:], ["--tcp-write-timeout", value], "command tail")
    case.__name__ = f"case_duration_{value}"
    return case


def case_check_command_runs_the_check_with_the_service_options():
    tmp = tempfile.mkdtemp(prefix="tinyderp-check-")
    try:
        args_file = os.path.join(tmp, "args")
        prog = os.path.join(tmp, "tinyderp")
        with open(prog, "w") as f:
            f.write(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {args_file}\nexit 1\n")
        os.chmod(prog, 0o755)
        r = run_init(section("option enabled '1'", "option hostname 'home.example.net'",
                             "option region_name \"Tom's home\"", "option wan_interface 'pppoe-wan'"),
                     action="check", prog=prog)
        eq(r.rc, 1, f"exit code (the check's own); stderr: {r.stderr}")
        eq(open(args_file).read().splitlines(),
           ["check"] + base_cmd("home.example.net")[1:] + ["--region-name", "Tom's home",
                                                           "--wan-interface", "pppoe-wan"],
           "check command line")
        eq(r.messages, [], "no procd message")
        r = run_init(section("option enabled '0'"), action="check", prog=prog)
        eq(r.rc, 2, "exit code when disabled")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_list_items_and_single_options():
    # a list item validated on its own; one value as a plain option works too
    r = run_init(section("option enabled '1'", "option extra_name 'one.example'", "list extra_ip '192.0.2.1'",
                         "list extra_ip '2001:db8::2'"))
    eq(r.instances()["main"]["command"][len(BASE_CMD):],
       ["--extra-name", "one.example", "--extra-ip", "192.0.2.1", "--extra-ip", "2001:db8::2"], "command tail")


def case_invalid_list_item_before_a_valid_one_is_dropped():
    # validate_data's result for a list is that of its last item (ubox behaviour); the
    # script uses the validated value, so the invalid item never reaches the command line
    r = run_init(section("option enabled '1'", "list extra_ip '192.0.2.300'", "list extra_ip '192.0.2.1'"))
    eq(r.instances()["main"]["command"][len(BASE_CMD):], ["--extra-ip", "192.0.2.1"], "command tail")


def case_validate_data_messages_reach_stderr():
    r = run_init(section("option enabled '1'", "option stun_port '70000'"))
    assert "tinyderp.main.stun_port=70000 validates as range(-1,65535) with false" in r.stderr, r.stderr


def main():
    if not os.path.exists(BUSYBOX):
        print(f"FAIL setup: busybox not found ({BUSYBOX}); apt-get install busybox")
        print("0 passed, 1 failed")
        return 1
    cases = [v for k, v in sorted(globals().items()) if k.startswith("case_") and callable(v)]
    cases += [make_invalid_case(n, line) for n, line in INVALID]
    cases += [make_valid_duration_case(v) for v in ("2s", "0", "250ms", "1h2m3.5s", "90")]
    cases += [make_option_valid_case(o) for o in OPTIONS]
    cases += [make_option_invalid_case(o) for o in OPTIONS if o["invalid"] is not None]
    if TINYDERP is None:
        # The script asks the binary before starting anything: nothing here can run.
        for case in cases:
            print(f"SKIPPED init {case.__name__[len('case_'):]}: no tinyderp binary (build it, or set TINYDERP_BIN)")
        print("0 passed, 0 failed")
        return 0
    passed = failed = 0
    for case in cases:
        name = case.__name__[len("case_"):]
        try:
            case()
        except AssertionError as e:
            failed += 1
            print(f"FAIL init {name}: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - report, keep going
            failed += 1
            print(f"FAIL init {name}: {type(e).__name__}: {e}")
            continue
        passed += 1
        print(f"ok   init {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
