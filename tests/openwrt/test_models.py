"""The fast models of tests/package/model checked against the real programs, once per run.

tests/package/test_init.py runs the init script against models of validate_data and uci
for quick edge cases; here the same questions go to both the model and OpenWrt's own
validate_data and uci (in a rootfs, through chroot). Where they disagree, OpenWrt wins:
the model must be fixed.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from router import Router

MODEL_BIN = os.path.join(REPO, "tests", "package", "model", "bin")
INIT = open(os.path.join(REPO, "init.d", "tinyderp")).read()
OPTIONS = json.load(open(os.path.join(os.path.dirname(__file__), "options.json")))

# Datatypes the init script asks validate_data about ("name:type[:default]").
_m = re.search(r"validate_section_tinyderp\(\)\s*\{(.*?)\n\}", INIT, re.S)
SPECS = re.findall(r"'([a-z_0-9]+):((?:[^':]|'[^']*')*?)(?::[^']*)?'", _m.group(1)) if _m else []
TYPES = sorted({t for _n, t in SPECS if t})
EDGE = ["", "0", "1", "-1", "65535", "65536", "on", "yes", "maybe", "a b", "example.com",
        "-bad.example", "192.0.2.1", "192.0.2.256", "2001:db8::1", "10.0.0.0/8", "10.0.0.0/33",
        "self-signed", "manual", "info", "chatty", "1.5", "0x10"]
VALUES = sorted(set(EDGE) | {o["valid"] for o in OPTIONS} |
                {o["invalid"] for o in OPTIONS if o.get("invalid") is not None})

UCI_FILES = {
    "options": "config tinyderp 'main'\n\toption enabled '1'\n\toption addr ':443'\n",
    "lists": "config tinyderp 'main'\n\tlist extra_name 'a.example'\n\tlist extra_name 'b'\n",
    "anonymous": "config tinyderp\n\toption enabled 0\nconfig tinyderp 'second'\n\toption x 'y z'\n",
    "quotes": "config tinyderp 'main'\n\toption region_name \"Home router\"\n"
              "\toption node_name 'it'\\''s'\n",
}


@pytest.fixture(scope="module")
def rootfs(userland, tmp_path_factory):
    r = Router(userland, "24.10", workdir=str(tmp_path_factory.mktemp("models")))
    r.assemble()
    return r.root


def real(root, *argv):
    return subprocess.run(["chroot", root, *argv], capture_output=True, text=True, timeout=30)


def model(name, *argv, env=None):
    return subprocess.run([os.path.join(MODEL_BIN, name), *argv], capture_output=True, text=True,
                          timeout=30, env=env)


@pytest.mark.parametrize("dtype", TYPES)
def test_validate_data_model(rootfs, dtype):
    """model validate_data agrees with ubox's on every datatype the init script uses"""
    # The model's answer, as its validate_data command computes it (in-process: fast).
    sys.path.insert(0, MODEL_BIN)
    import ucimodel  # noqa: E402 pylint: disable=import-outside-toplevel
    out = real(rootfs, "/bin/sh", "-c", 'T=$1; shift; for v in "$@"; do '
               '/sbin/validate_data "$T" "$v" >/dev/null 2>&1; echo $?; done',
               "sh", dtype, *VALUES).stdout.split()
    assert len(out) == len(VALUES)
    wrong = []
    for value, rc in zip(VALUES, out):
        want = rc == "0"
        got = bool(ucimodel.dt_parse(dtype, value))
        if want != got:
            wrong.append(f"{value!r}: OpenWrt {'accepts' if want else 'refuses'}, model "
                         f"{'accepts' if got else 'refuses'}")
    assert not wrong, f"validate_data {dtype}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(UCI_FILES))
def test_uci_model(rootfs, name):
    """model uci export/show agrees with OpenWrt's uci on the same file"""
    d = os.path.join(rootfs, "tmp", "uci-" + name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tinyderp"), "w") as f:
        f.write(UCI_FILES[name])
    for args in (["export", "tinyderp"], ["show", "tinyderp"]):
        want = real(rootfs, "/sbin/uci", "-c", "/tmp/uci-" + name, *args)
        got = model("uci", "-c", d, *args)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout), \
            f"uci {' '.join(args)}:\nOpenWrt:\n{want.stdout}{want.stderr}\nmodel:\n{got.stdout}{got.stderr}"
