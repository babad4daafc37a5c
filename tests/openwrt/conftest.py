"""Fixtures of the OpenWrt harness: one booted router per release, shared by a module.

Environment (set by tests/openwrt/run.sh):
  OPENWRT_USERLAND  output of build-userland.sh (programs + OpenWrt trees)
  TINYDERP_DIST     dist/ with x86_64/tinyderp, the .ipk and x86_64/*.apk
  DERP_CLIENT       the crate's example DERP client (examples/derp_client.rs), host build
"""

import collections
import glob
import os

import pytest

from router import Router

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _need(var):
    value = os.environ.get(var, "")
    if not value or not os.path.exists(value):
        pytest.skip(f"{var} not set or missing ({value!r}): run tests/openwrt/run.sh")
    return value


@pytest.fixture(scope="session")
def userland():
    return _need("OPENWRT_USERLAND")


@pytest.fixture(scope="session")
def dist():
    return _need("TINYDERP_DIST")


@pytest.fixture(scope="session")
def derp_client():
    return _need("DERP_CLIENT")


def ipk_path(dist):
    found = sorted(glob.glob(os.path.join(dist, "tinyderp_*_x86_64.ipk")))
    if not found:
        pytest.skip("no x86_64 .ipk in " + dist)
    return found[-1]


def apk_path(dist):
    found = sorted(glob.glob(os.path.join(dist, "x86_64", "tinyderp-*.apk")))
    if not found:
        pytest.skip("no x86_64 .apk in " + dist)
    return found[-1]


def boot(userland, release):
    r = Router(userland, release)
    r.assemble()
    r.boot()
    return r


@pytest.fixture(scope="module")
def router24(userland):
    r = boot(userland, "24.10")
    yield r
    r.cleanup()


@pytest.fixture(scope="module")
def router25(userland):
    r = boot(userland, "25.12")
    yield r
    r.cleanup()


_results = collections.OrderedDict()


def pytest_runtest_logreport(report):
    """Counts outcomes per scenario (the test function's name, parameters dropped)."""
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        name = "::".join(report.nodeid.split("::")[-2:]).split("[")[0]
        doc = _docs.get(name, name)
        counts = _results.setdefault(doc, collections.Counter())
        if hasattr(report, "wasxfail"):
            counts["xpass" if report.outcome == "passed" else "xfail"] += 1
        else:
            counts[report.outcome] += 1


_docs = {}


def pytest_collection_modifyitems(items):
    for item in items:
        fn = getattr(item, "function", None)
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn and fn.__doc__ else item.name
        _docs["::".join(item.nodeid.split("::")[-2:]).split("[")[0]] = doc


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.section("OpenWrt userland scenarios")
    cols = ("passed", "failed", "skipped", "xfail", "xpass")
    tr.write_line(f"{'scenario':<72} " + " ".join(f"{c:>7}" for c in cols))
    total = collections.Counter()
    for doc, counts in _results.items():
        total.update(counts)
        tr.write_line(f"{doc[:72]:<72} " + " ".join(f"{counts.get(c, 0):>7}" for c in cols))
    tr.write_line(f"{'total':<72} " + " ".join(f"{total.get(c, 0):>7}" for c in cols))
