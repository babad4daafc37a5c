#!/usr/bin/env python3
"""Checks what openwrt/package.sh makes: the .ipk (ipkg-build layout: gzip'd GNU tar of
debian-binary, data.tar.gz, control.tar.gz; control fields; conffiles; postinst/prerm)
and the apk v3 .apk (read back with tests/package/apk3_reader.py, which verifies the
container, hashes and unique id), their paths, modes, owners and contents, and that two
runs give identical bytes. Also golden bytes of the apk3.py encoder primitives.

Packages are built from a stand-in binary for every arch of cross/targets.tsv into a
temporary dist; packages of real binaries in dist/ (from cross/build.sh) are checked too
when they exist. Prints `ok`/`FAIL` lines and `N passed, N failed`.
"""

import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "openwrt"))
import apk3  # noqa: E402  (the writer, for its primitive golden tests)
import apk3_reader  # noqa: E402

EPOCH = 1700000000
VERSION_FILE = os.path.join(ROOT, "Cargo.toml")

# ELF e_machine and class/endianness expected per OpenWrt arch
ELF_BY_ARCH = {
    "mips_24kc": (8, 1, 2),  # EM_MIPS, 32-bit, big-endian
    "mipsel_24kc": (8, 1, 1),
    "arm_cortex-a7_neon-vfpv4": (40, 1, 1),  # EM_ARM
    "aarch64_cortex-a53": (183, 2, 1),  # EM_AARCH64
    "x86_64": (62, 2, 1),  # EM_X86_64
}


def crate_version():
    for line in open(VERSION_FILE):
        if line.startswith("version"):
            return line.split('"')[1] + "-r1"
    raise AssertionError("no version in Cargo.toml")


def arches():
    out = []
    for line in open(os.path.join(ROOT, "cross", "targets.tsv")):
        if line.strip() and not line.startswith("#"):
            out.append(line.split("\t")[1])
    return out


def eq(actual, expected, what):
    assert actual == expected, f"{what}: got {actual!r}, expected {expected!r}"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def expected_files(binary):
    """path -> (mode, content) of the package payload (both formats)."""
    return {
        "usr/sbin/tinyderp": (0o755, binary),
        "etc/init.d/tinyderp": (0o755, read(os.path.join(ROOT, "init.d", "tinyderp"))),
        "etc/config/tinyderp": (0o600, read(os.path.join(ROOT, "init.d", "tinyderp.config"))),
        "etc/capabilities/tinyderp.json": (0o644, read(os.path.join(ROOT, "init.d", "tinyderp.capabilities.json"))),
        "lib/upgrade/keep.d/tinyderp": (0o644, b"/etc/tinyderp/\n"),
    }


def run_package(dist, arch):
    env = dict(os.environ, TINYDERP_DIST=dist, SOURCE_DATE_EPOCH=str(EPOCH))
    p = subprocess.run(["bash", os.path.join(ROOT, "openwrt", "package.sh"), arch], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"package.sh {arch} failed: {p.stderr}"


def fake_dist(tmp, arch):
    d = os.path.join(tmp, arch)
    os.makedirs(d, exist_ok=True)
    binary = b"\x7fELF stand-in for " + arch.encode() + b"\n" + bytes(range(256)) * 40
    with open(os.path.join(d, "tinyderp"), "wb") as f:
        f.write(binary)
    os.chmod(os.path.join(d, "tinyderp"), 0o755)
    return binary


# ---- .ipk ----------------------------------------------------------------------------

def check_ipk(path, arch, binary, epoch=EPOCH):
    raw = read(path)
    eq(raw[:2], b"\x1f\x8b", "outer file is gzip")
    eq(raw[4:8], b"\0\0\0\0", "gzip -n: no timestamp")
    outer = tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz")
    members = outer.getmembers()
    eq([m.name for m in members], ["./debian-binary", "./data.tar.gz", "./control.tar.gz"], "outer members")
    for m in members:
        eq((m.uid, m.gid, m.mtime), (0, 0, epoch), f"{m.name} owner/mtime")
    eq(outer.extractfile("./debian-binary").read(), b"2.0\n", "debian-binary")
    with open(path, "rb") as f:
        tar_bytes = gzip.decompress(f.read())
    eq(tar_bytes[257:265], b"ustar  \0", "GNU tar format")

    data_gz = outer.extractfile("./data.tar.gz").read()
    data_tar = gzip.decompress(data_gz)
    data = tarfile.open(fileobj=io.BytesIO(data_tar))
    got = {}
    for m in data.getmembers():
        eq((m.uid, m.gid, m.uname, m.gname), (0, 0, "", ""), f"{m.name} numeric owner")
        eq(m.mtime, epoch, f"{m.name} mtime")
        name = m.name[2:] if m.name.startswith("./") else m.name
        if m.isdir():
            eq(m.mode, 0o755, f"dir {m.name} mode")
            continue
        assert m.isfile(), f"{m.name}: only files and dirs expected"
        got[name] = (m.mode, data.extractfile(m).read())
    eq(sorted(got), sorted(expected_files(binary)), "data files")
    for name, (mode, content) in expected_files(binary).items():
        eq(got[name][0], mode, f"{name} mode")
        assert got[name][1] == content, f"{name} content differs from its source"

    control = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./control.tar.gz").read()), mode="r:gz")
    cmembers = {m.name: m for m in control.getmembers()}
    eq(sorted(cmembers), [".", "./conffiles", "./control", "./postinst", "./prerm"], "control members")
    eq({n: cmembers[n].mode for n in ("./conffiles", "./control", "./postinst", "./prerm")},
       {"./conffiles": 0o644, "./control": 0o644, "./postinst": 0o755, "./prerm": 0o755}, "control modes")
    fields = {}
    for line in control.extractfile("./control").read().decode().splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    eq(list(fields), ["Package", "Version", "Source", "SourceName", "License", "Section", "Require-User",
                      "SourceDateEpoch", "Maintainer", "Architecture", "Installed-Size", "Description"],
       "control field order")
    eq(fields["Package"], "tinyderp", "Package")
    eq(fields["Version"], crate_version(), "Version")
    eq(fields["Architecture"], arch, "Architecture")
    eq(fields["License"], "BSD-3-Clause", "License")
    eq(fields["Require-User"], "tinyderp:tinyderp", "Require-User")
    eq(fields["SourceDateEpoch"], str(epoch), "SourceDateEpoch")
    eq(int(fields["Installed-Size"]), len(data_tar), "Installed-Size = uncompressed data.tar")
    assert fields["Description"].startswith(" A small Tailscale-compatible DERP relay"), fields["Description"]
    eq(control.extractfile("./conffiles").read(), b"/etc/config/tinyderp\n", "conffiles")
    postinst = control.extractfile("./postinst").read().decode()
    eq(postinst.splitlines(), ["#!/bin/sh", '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0',
                               "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0",
                               ". ${IPKG_INSTROOT}/lib/functions.sh", "default_postinst $0 $@"], "postinst")
    prerm = control.extractfile("./prerm").read().decode()
    eq(prerm.splitlines(), ["#!/bin/sh", "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0",
                            ". ${IPKG_INSTROOT}/lib/functions.sh", "default_prerm $0 $@"], "prerm")


# ---- .apk ----------------------------------------------------------------------------

def check_apk(path, arch, binary, epoch=EPOCH):
    raw = read(path)
    eq(raw[:4], b"ADBd", "deflate-compressed adb")
    pkg = apk3_reader.read_package(raw)
    info = pkg["info"]
    eq((info["name"], info["version"], info["arch"], info["license"], info["origin"]),
       ("tinyderp", crate_version(), arch, "BSD-3-Clause", "tinyderp"), "pkginfo")
    eq(len(info["hashes"]), 40, "unique id length (20 bytes)")
    assert "depends" not in info, "a static binary depends on nothing"
    eq(pkg["signed"], False, "unsigned (install with --allow-untrusted)")

    expected = expected_files(binary)
    meta = "lib/apk/packages/tinyderp"
    listing = sorted("/" + p for p in list(expected) + [meta + ".rusers"])
    expected[meta + ".list"] = (0o644, ("\n".join(listing) + "\n").encode())
    expected[meta + ".rusers"] = (0o644, b"tinyderp:tinyderp\n")
    expected[meta + ".conffiles"] = (0o644, b"/etc/config/tinyderp\n/etc/tinyderp/\n")
    conf_sum = hashlib.sha256(expected["etc/config/tinyderp"][1]).hexdigest()
    expected[meta + ".conffiles_static"] = (0o644, f"/etc/config/tinyderp {conf_sum}\n".encode())
    eq(sorted(pkg["files"]), sorted(expected), "apk files")
    total = 0
    for name, (mode, content) in expected.items():
        e = pkg["files"][name]
        eq((e["mode"], e["user"], e["group"], e["mtime"]), (mode, "root", "root", epoch), f"{name} acl/mtime")
        assert e["data"] == content, f"{name} content differs"
        total += len(content)
    eq(info["installed-size"], total, "installed-size")
    eq([p["name"] for p in pkg["paths"]],
       ["", "etc", "etc/capabilities", "etc/config", "etc/init.d", "lib", "lib/apk", "lib/apk/packages",
        "lib/upgrade", "lib/upgrade/keep.d", "usr", "usr/sbin"],
       "directory entries (all, the root too, like apk mkpkg)")
    for p in pkg["paths"]:
        eq((p["mode"], p["user"], p["group"]), (0o755, "root", "root"), f"dir {p['name']!r} acl")
    post = pkg["scripts"]["post-install"].splitlines()
    eq(post[-4:], ['export root="${IPKG_INSTROOT}"', 'export pkgname="tinyderp"', "add_group_and_user",
                   "default_postinst"], "post-install tail")
    eq(pkg["scripts"]["post-upgrade"].splitlines()[:2], ["#!/bin/sh", "export PKG_UPGRADE=1"], "post-upgrade head")
    assert pkg["scripts"]["pre-deinstall"].rstrip().endswith("default_prerm"), "pre-deinstall"
    eq(sorted(pkg["scripts"]), ["post-install", "post-upgrade", "pre-deinstall"], "scripts")


# ---- tests ---------------------------------------------------------------------------

def test_every_arch_packages(tmp):
    for arch in arches():
        binary = fake_dist(tmp, arch)
        run_package(tmp, arch)
        check_ipk(os.path.join(tmp, f"tinyderp_{crate_version()}_{arch}.ipk"), arch, binary)
        check_apk(os.path.join(tmp, arch, f"tinyderp-{crate_version()}.apk"), arch, binary)


def test_reproducible(tmp):
    arch = "mipsel_24kc"
    fake_dist(tmp, arch)
    run_package(tmp, arch)
    ipk = os.path.join(tmp, f"tinyderp_{crate_version()}_{arch}.ipk")
    apk = os.path.join(tmp, arch, f"tinyderp-{crate_version()}.apk")
    first = (read(ipk), read(apk))
    run_package(tmp, arch)
    assert (read(ipk), read(apk)) == first, "a second run gave different bytes"


def test_missing_binary_is_an_error(tmp):
    env = dict(os.environ, TINYDERP_DIST=tmp)
    p = subprocess.run(["bash", os.path.join(ROOT, "openwrt", "package.sh"), "mips_24kc"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "cross/build.sh" in p.stderr, (p.returncode, p.stderr)


def test_reader_rejects_corruption(tmp):
    arch = "x86_64"
    fake_dist(tmp, arch)
    run_package(tmp, arch)
    raw = read(os.path.join(tmp, arch, f"tinyderp-{crate_version()}.apk"))
    container = apk3_reader.inflate_container(raw)
    # flip one byte inside the last DATA block: hash check must fail
    bad = bytearray(container)
    bad[-20] ^= 0x01
    try:
        apk3_reader.read_package(bytes(bad))
    except apk3_reader.ApkFormatError as e:
        assert "hash" in str(e) or "padding" in str(e), e
    else:
        raise AssertionError("corrupted data accepted")
    # change one byte of the ADB payload: the unique id must no longer match
    bad = bytearray(container)
    name_at = bytes(bad).find(b"BSD-3-Clause")
    bad[name_at] ^= 0x20
    try:
        apk3_reader.read_package(bytes(bad))
    except apk3_reader.ApkFormatError as e:
        assert "unique id" in str(e), e
    else:
        raise AssertionError("changed metadata accepted")


def test_apk3_encoder_golden_bytes(tmp):
    w = apk3.AdbWriter()
    eq(w.blob(b"abc"), 0x80000008, "blob8 value at offset 8")
    eq(bytes(w.buf[8:]), b"\x03abc", "blob8 bytes")
    eq(w.blob(b"abc"), 0x80000008, "identical blob reused")
    eq(w.int(5), 0x10000005, "small int is immediate")
    eq(w.int(0x12345678), 0x2000000C, "int32 stored at the next 4-aligned offset")
    eq(bytes(w.buf[12:16]), struct.pack("<I", 0x12345678), "int32 bytes")
    v = w.obj({1: 0x10000001, 2: 0, 3: 0x10000003, 4: 0})
    eq(v, 0xE0000010, "object offset")
    eq(bytes(w.buf[16:32]), struct.pack("<4I", 4, 0x10000001, 0, 0x10000003), "object slots, trailing null dropped")
    eq(w.obj({1: 0}), 0, "empty object is null")
    eq(w.blob(b"x" * 300) >> 28, 0x9, "300-byte blob uses a u16 length")
    eq(apk3.block(2, b"\x01\x02\x03"), struct.pack("<I", (2 << 30) | 7) + b"\x01\x02\x03" + b"\0", "DATA block padded to 8")
    eq(apk3.block(0, b"12345678")[:4], struct.pack("<I", 12), "ADB block size counts its header")


# SHA-256 of the uncompressed container that apk-tools 3.0.6 `apk mkpkg` (built from
# alpinelinux/apk-tools 90b974fd) wrote for the fixture below with SOURCE_DATE_EPOCH
# 1700000000 and the same --info/--script arguments; its deflated file was byte-identical
# to apk3.py's too. The fixture covers an empty file (no DATA block), a file whose
# length needs a u16 and one over 64 KiB, modes 0600/0644/0755 and all info strings.
MKPKG_FIXTURE_CONTAINER_SHA256 = "f6cbe73dfd3c86f00b0f5b21f3e90bfc0e93cc401997c7a3df0e35229f9257b9"


def test_apk3_matches_apk_mkpkg_golden(tmp):
    tree = os.path.join(tmp, "tree")

    def put(path, mode, data):
        full = os.path.join(tree, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.chmod(full, mode)

    put("usr/bin/hello", 0o755, b"#!/bin/sh\necho hello\n")
    put("etc/config/hello", 0o600, b"config hello 'main'\n\toption enabled '0'\n")
    put("etc/hello/empty", 0o644, b"")
    put("usr/share/hello/big.bin", 0o644, bytes((i * 7) % 251 for i in range(70000)))
    put("usr/share/hello/a", 0o644, b"a" * 300)
    for d, _, _ in os.walk(tree):
        os.chmod(d, 0o755)
    post, pre = os.path.join(tmp, "post"), os.path.join(tmp, "pre")
    with open(post, "w") as f:
        f.write("#!/bin/sh\necho installed\n")
    with open(pre, "w") as f:
        f.write("#!/bin/sh\necho removing\n")
    out = os.path.join(tmp, "hello.apk")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    subprocess.run([sys.executable, os.path.join(ROOT, "openwrt", "apk3.py"), "--info", "name:hello",
                    "--info", "version:1.0-r1", "--info", "description:Fixture package",
                    "--info", "arch:mips_24kc", "--info", "license:MIT", "--info", "origin:hello",
                    "--info", "maintainer:Nobody <nobody@example.org>", "--info", "url:https://example.org/",
                    "--script", f"post-install:{post}", "--script", f"pre-deinstall:{pre}",
                    "--files", tree, "--output", out], env=env, check=True, timeout=60)
    container = apk3_reader.inflate_container(read(out))
    eq(hashlib.sha256(container).hexdigest(), MKPKG_FIXTURE_CONTAINER_SHA256, "container vs apk mkpkg")
    pkg = apk3_reader.read_package(read(out))
    eq(pkg["files"]["etc/hello/empty"]["data"], b"", "empty file")
    eq(len(pkg["files"]["usr/share/hello/big.bin"]["data"]), 70000, "large file")


def test_real_binaries_in_dist(tmp):
    """Packages of the cross-built binaries (dist/ARCH/tinyderp), made afresh in tmp."""
    dist = os.path.join(ROOT, "dist")
    built = [a for a in arches() if os.path.exists(os.path.join(dist, a, "tinyderp"))]
    if not built:
        print("     (no dist/*/tinyderp from cross/build.sh: real-binary packages not checked)")
        return
    for arch in built:
        binary = read(os.path.join(dist, arch, "tinyderp"))
        eq(binary[:4], b"\x7fELF", f"{arch}: ELF")
        machine = struct.unpack(">H" if binary[5] == 2 else "<H", binary[18:20])[0]
        eq((machine, binary[4], binary[5]), ELF_BY_ARCH[arch], f"{arch}: ELF machine/class/endianness")
        os.makedirs(os.path.join(tmp, arch))
        with open(os.path.join(tmp, arch, "tinyderp"), "wb") as f:
            f.write(binary)
        os.chmod(os.path.join(tmp, arch, "tinyderp"), 0o755)
        run_package(tmp, arch)
        ipk = os.path.join(tmp, f"tinyderp_{crate_version()}_{arch}.ipk")
        apk = os.path.join(tmp, arch, f"tinyderp-{crate_version()}.apk")
        check_ipk(ipk, arch, binary)
        check_apk(apk, arch, binary)
        budget = package_budgets()[arch]
        for path in (ipk, apk):
            size = os.path.getsize(path)
            if size > budget:
                raise AssertionError(f"{os.path.basename(path)}: {size} bytes, over the {budget}-byte "
                                     f"package budget in cross/size-budget.tsv")


def package_budgets():
    """The largest .ipk/.apk per arch (third column of cross/size-budget.tsv)."""
    budgets = {}
    with open(os.path.join(ROOT, "cross", "size-budget.tsv")) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if line.startswith("#") or fields[0] == "openwrt_arch":
                continue
            budgets[fields[0]] = int(fields[2])
    return budgets


def test_feed_makefile_agrees_with_package_sh(tmp):
    mk = open(os.path.join(ROOT, "openwrt", "Makefile")).read()
    sh = open(os.path.join(ROOT, "openwrt", "package.sh")).read()

    def mk_var(name):
        for line in mk.splitlines():
            if line.strip().startswith(name + ":="):
                return line.split(":=", 1)[1].strip()
        raise AssertionError(f"{name} not in openwrt/Makefile")

    def sh_var(name):
        for line in sh.splitlines():
            if line.startswith(name + "="):
                return line.split("=", 1)[1].strip().strip('"')
        raise AssertionError(f"{name} not in openwrt/package.sh")

    eq(mk_var("PKG_VERSION") + "-r" + mk_var("PKG_RELEASE"), crate_version(), "Makefile version vs Cargo.toml")
    eq(mk_var("PKG_RELEASE"), sh_var("PKG_RELEASE"), "PKG_RELEASE")
    eq(mk_var("PKG_LICENSE"), sh_var("PKG_LICENSE"), "license")
    eq(mk_var("USERID"), sh_var("PKG_USERID"), "USERID")
    assert "include $(TOPDIR)/feeds/packages/lang/rust/rust-package.mk" in mk, "rust-package.mk"
    block = mk.split("define Package/tinyderp/conffiles", 1)[1].split("endef", 1)[0].split()
    sh_conf = sh.split('CONFFILES="', 1)[1].split('"', 1)[0].split()
    eq(block, sh_conf, "conffiles (Makefile vs package.sh)")
    # the init files come from their one copy in init.d/
    for src, dst in (("init.d/tinyderp", "/etc/init.d/tinyderp"), ("init.d/tinyderp.config", "/etc/config/tinyderp"),
                     ("init.d/tinyderp.capabilities.json", "/etc/capabilities/tinyderp.json")):
        assert f"$(TINYDERP_TREE)/{src} $(1){dst}" in mk, f"Makefile does not install {src} to {dst}"
        assert f'"$root/{src}" "$dest{dst}"' in sh, f"package.sh does not install {src} to {dst}"


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for t in tests:
        with tempfile.TemporaryDirectory(prefix="tinyderp-pkg-") as tmp:
            try:
                t(tmp)
            except Exception as e:  # noqa: BLE001 - report and go on
                failed += 1
                print(f"FAIL package {t.__name__[5:]}: {type(e).__name__}: {e}")
                continue
        passed += 1
        print(f"ok   package {t.__name__[5:]}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
