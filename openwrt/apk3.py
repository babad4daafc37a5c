#!/usr/bin/env python3
"""Write an apk v3 package (the format of apk-tools 3, used by OpenWrt 25.12 and newer)
from a directory tree, without apk-tools, following apk-v3(5) and what `apk mkpkg`
writes. Used by openwrt/package.sh because no apk-tools 3 is packaged for this build
machine; tests/package/apk3_reader.py reads the result back independently.

Usage (a subset of `apk mkpkg`'s options):
  apk3.py --info name:N --info version:V [--info KEY:VALUE ...]
          [--script post-install:FILE ...] --files DIR --output OUT.apk

Layout written (all integers little-endian):
  file     = "ADBd" + raw-deflate(level 9) of the container below (apk's default)
  container= "ADB." u32 schema "pckg", then blocks, each padded with zeros to 8 bytes
  block    = u32 (type << 30 | 4 + payload length), payload
             type 0 ADB: the metadata database; type 2 DATA: one file's content
  ADB      = u8 compat 0, u8 version 0, u16 0, u32 root value, then values
  value    = u32: top 4 bits type, low 28 bits immediate or offset into ADB
             0x0 special (0 null), 0x1 int < 2^28, 0x2 int32 at offset,
             0x3 int64 at offset, 0x8/0x9/0xa blob with u8/u16/u32 length prefix,
             0xd array / 0xe object: u32 slot count n, then n-1 values (slot 1..n-1),
             trailing null slots dropped (mkpkg tags the paths and files arrays 0xe)
  DATA     = u32 path index, u32 file index (1-based, into paths[] and its files[]),
             then the file's bytes
The package object: 1 info (pkginfo; its slot 15 depends is an array of dependency
objects {1 name}), 2 paths (every dir, the root as '', sorted by
name, each: 1 name,
2 acl {1 mode, 2 user, 3 group}, 3 files sorted by name: 1 name, 2 acl, 3 size,
4 mtime, 5 sha256), 3 scripts. pkginfo "hashes" (the unique id) is the first 20 bytes
of SHA-256 over the ADB payload written with that field zeroed.
"""

import argparse
import hashlib
import os
import stat
import struct
import subprocess
import sys
import tempfile
import zlib

T_INT, T_INT32, T_INT64 = 0x10000000, 0x20000000, 0x30000000
T_BLOB8, T_BLOB16, T_BLOB32 = 0x80000000, 0x90000000, 0xA0000000
T_ARRAY, T_OBJECT = 0xD0000000, 0xE0000000
NULL = 0
SCHEMA_PACKAGE = 0x676B6370  # "pckg"
BLOCK_ADB, BLOCK_DATA = 0, 2
BLOCK_ALIGN = 8

# pkginfo slots
PI_FIELDS = {
    "name": 1, "version": 2, "description": 4, "arch": 5, "license": 6, "origin": 7,
    "maintainer": 8, "url": 9,
}
PI_HASHES, PI_BUILD_TIME, PI_INSTALLED_SIZE = 3, 11, 12
# pkginfo slot of the dependency array ("depends:NAME NAME..."): objects {1 name}
PI_DEPENDS = 15
# scripts slots
SCRIPT_FIELDS = {
    "trigger": 1, "pre-install": 2, "post-install": 3, "pre-deinstall": 4,
    "post-deinstall": 5, "pre-upgrade": 6, "post-upgrade": 7,
}
UNIQUE_ID_LEN = 20  # SHA-1 length, filled from SHA-256


class AdbWriter:
    """Appends values to one ADB payload, reusing identical data like apk does."""

    def __init__(self):
        self.buf = bytearray(8)  # header; root patched in at the end
        self.seen = {}

    def _data(self, data, align, cache=True):
        if cache:
            off = self.seen.get(data)
            if off is not None and off % align == 0:
                return off
        pad = (-len(self.buf)) % align
        self.buf += b"\0" * pad
        off = len(self.buf)
        self.buf += data
        if cache:
            self.seen.setdefault(bytes(data), off)
        return off

    def blob(self, data, cache=True):
        n = len(data)
        if n == 0:
            return NULL
        if n > 0xFFFF:
            return T_BLOB32 | self._data(struct.pack("<I", n) + data, 4, cache)
        if n > 0xFF:
            return T_BLOB16 | self._data(struct.pack("<H", n) + data, 2, cache)
        return T_BLOB8 | self._data(struct.pack("<B", n) + data, 1, cache)

    def int(self, v):
        if v >= 1 << 32:
            return T_INT64 | self._data(struct.pack("<Q", v), 4)
        if v >= 0x10000000:
            return T_INT32 | self._data(struct.pack("<I", v), 4)
        return T_INT | v

    def _slots(self, vals, kind):
        vals = list(vals)
        while vals and vals[-1] == NULL:
            vals.pop()
        if not vals:
            return NULL
        raw = struct.pack(f"<{len(vals) + 1}I", len(vals) + 1, *vals)
        return kind | self._data(raw, 4)

    def obj(self, fields):
        """fields: {slot index: value}"""
        top = max(fields) if fields else 0
        return self._slots([fields.get(i, NULL) for i in range(1, top + 1)], T_OBJECT)

    def arr(self, items, kind=T_ARRAY):
        return self._slots(items, kind)

    def set_root(self, v):
        struct.pack_into("<I", self.buf, 4, v)


def scan(files_dir):
    """Directories (relative, '' for the root) with their regular files, sorted."""
    dirs = {"": os.lstat(files_dir)}
    for base, subdirs, _ in os.walk(files_dir):
        for d in subdirs:
            full = os.path.join(base, d)
            dirs[os.path.relpath(full, files_dir)] = os.lstat(full)
    out = []
    for rel in sorted(dirs, key=lambda p: p.encode()):
        full = os.path.join(files_dir, rel) if rel else files_dir
        entries = sorted(os.listdir(full), key=lambda p: p.encode())
        files = []
        for name in entries:
            st = os.lstat(os.path.join(full, name))
            if stat.S_ISREG(st.st_mode):
                files.append((name, st))
            elif not stat.S_ISDIR(st.st_mode):
                raise SystemExit(f"apk3.py: only regular files and directories are supported: {rel}/{name}")
        out.append((rel, dirs[rel], files))
    return out


def build(info, scripts, files_dir, mtime):
    """The uncompressed container. Values are written in the order `apk mkpkg` writes
    them (info strings by slot, then per directory its files and itself, then the
    sizes, unique id, info, paths, scripts, root), so the bytes match its output."""
    w = AdbWriter()
    pkginfo = {}
    for key, value in sorted(info.items(), key=lambda kv: PI_FIELDS.get(kv[0], PI_DEPENDS)):
        if key == "depends":
            deps = [w.obj({1: w.blob(name.encode())}) for name in value.split()]
            pkginfo[PI_DEPENDS] = w.arr(deps)
        else:
            pkginfo[PI_FIELDS[key]] = w.blob(value.encode())

    def acl(mode):
        return w.obj({1: w.int(mode), 2: w.blob(b"root"), 3: w.blob(b"root")})

    paths = []  # (dir value, [(file path, size)])
    installed = 0
    for rel, dst, files in scan(files_dir):
        file_vals, file_paths = [], []
        for name, st in files:
            path = os.path.join(files_dir, rel, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).digest()
            name_v = w.blob(name.encode())
            hash_v = w.blob(digest)
            mtime_v = w.int(mtime)
            size_v = w.int(st.st_size)
            acl_v = acl(stat.S_IMODE(st.st_mode))
            file_vals.append(w.obj({1: name_v, 2: acl_v, 3: size_v, 4: mtime_v, 5: hash_v}))
            file_paths.append((path, st.st_size))
            installed += st.st_size
        # Every directory is listed, the root ('') too, as `apk mkpkg` does without
        # --compat (it prunes implied ones only for newer --compat levels).
        name_v = w.blob(rel.encode())
        acl_v = acl(stat.S_IMODE(dst.st_mode))
        # mkpkg stores the files and paths arrays through its object writer, so their
        # values carry the object type; apk reads either type as a container.
        files_v = w.arr(file_vals, T_OBJECT)
        paths.append((w.obj({1: name_v, 2: acl_v, 3: files_v}), file_paths))

    pkginfo[PI_INSTALLED_SIZE] = w.int(installed or 1)
    unique_id = w.blob(b"\0" * UNIQUE_ID_LEN, cache=False)
    pkginfo[PI_HASHES] = unique_id
    pkg = {1: w.obj(pkginfo), 2: w.arr([d for d, _ in paths], T_OBJECT)}
    if scripts:
        pkg[3] = w.obj({SCRIPT_FIELDS[k]: w.blob(v) for k, v in sorted(scripts.items(), key=lambda kv: SCRIPT_FIELDS[kv[0]])})
    w.set_root(w.obj(pkg))

    # Unique id: SHA-256 of the payload with the id zeroed, first 20 bytes.
    digest = hashlib.sha256(bytes(w.buf)).digest()
    off = (unique_id & 0x0FFFFFFF) + 1
    w.buf[off : off + UNIQUE_ID_LEN] = digest[:UNIQUE_ID_LEN]

    out = bytearray(struct.pack("<II", 0x2E424441, SCHEMA_PACKAGE))
    out += block(BLOCK_ADB, bytes(w.buf))
    for path_idx, (_, file_paths) in enumerate(paths, 1):
        for file_idx, (path, size) in enumerate(file_paths, 1):
            if size == 0:
                continue
            with open(path, "rb") as f:
                out += block(BLOCK_DATA, struct.pack("<II", path_idx, file_idx) + f.read())
    return bytes(out)


def block(kind, payload):
    raw = struct.pack("<I", (kind << 30) | (4 + len(payload))) + payload
    return raw + b"\0" * ((-len(raw)) % BLOCK_ALIGN)


def deflate(container, zopfli=False):
    """The ADB deflate container: raw deflate of the whole container, by zlib at level 9 or
    by the zopfli CLI (the same format, about 4 % smaller; openwrt/package.sh uses it)."""
    if zopfli:
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(container)
            tmp.flush()
            stream = subprocess.run(["zopfli", "--deflate", "-c", tmp.name],
                                    check=True, capture_output=True).stdout
        return b"ADBd" + stream
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"ADBd" + c.compress(container) + c.flush()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--info", "-I", action="append", default=[])
    ap.add_argument("--script", "-s", action="append", default=[])
    ap.add_argument("--files", "-F", required=True)
    ap.add_argument("--output", "-o", required=True)
    ap.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    ap.add_argument("--zopfli", action="store_true",
                    help="deflate with the zopfli CLI instead of zlib (smaller, same format)")
    args = ap.parse_args(argv)
    info = {}
    for item in args.info:
        key, sep, value = item.partition(":")
        if not sep or (key not in PI_FIELDS and key != "depends"):
            ap.error(f"unsupported --info {item!r} (supported: {', '.join(PI_FIELDS)}, depends)")
        info[key] = value
    for required in ("name", "version"):
        if required not in info:
            ap.error(f"required info field '{required}' not provided")
    scripts = {}
    for item in args.script:
        key, sep, path = item.partition(":")
        if not sep or key not in SCRIPT_FIELDS:
            ap.error(f"unsupported --script {item!r}")
        with open(path, "rb") as f:
            scripts[key] = f.read()
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
    container = build(info, scripts, args.files, mtime)
    data = deflate(container, args.zopfli) if args.compression == "deflate" else container
    with open(args.output, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
