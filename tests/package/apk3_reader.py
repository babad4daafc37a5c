#!/usr/bin/env python3
"""An apk v3 package reader written from the format description in apk-tools'
doc/apk-v3.5 and the field numbering of src/apk_adb.h, separately from the writer
(openwrt/apk3.py) so that it checks the writer rather than repeating it.

It rejects anything malformed: unknown compression, bad magic or schema, a block
stream out of order (one ADB, SIG*, DATA*), misaligned or non-zero padding, values
pointing outside the ADB payload, wrong value types for a field, unsorted paths or
files, a unique id that is not the SHA-256 prefix of the payload, DATA blocks that do
not match a file's size and hash or are missing. Returns plain dicts.

  python3 apk3_reader.py FILE.apk      prints a listing (like `apk adbdump` + files)
"""

import hashlib
import struct
import sys
import zlib


class ApkFormatError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise ApkFormatError(msg)


# field names by slot, from apk_adb.h
PKGINFO_NAMES = {1: "name", 2: "version", 3: "hashes", 4: "description", 5: "arch", 6: "license",
                 7: "origin", 8: "maintainer", 9: "url", 10: "repo-commit", 11: "build-time",
                 12: "installed-size", 13: "file-size", 14: "provider-priority", 15: "depends",
                 16: "provides", 17: "replaces", 18: "install-if", 19: "recommends", 20: "layer",
                 21: "tags"}
PKGINFO_INTS = {"build-time", "installed-size", "file-size", "provider-priority", "layer"}
PKGINFO_LISTS = {"depends", "provides", "replaces", "install-if", "recommends", "tags"}
SCRIPT_NAMES = {1: "trigger", 2: "pre-install", 3: "post-install", 4: "pre-deinstall",
                5: "post-deinstall", 6: "pre-upgrade", 7: "post-upgrade"}


class Adb:
    """Typed access to the values of one ADB payload."""

    def __init__(self, payload):
        need(len(payload) >= 8, "ADB block shorter than its header")
        self.p = payload
        compat, ver, _reserved, self.root = struct.unpack_from("<BBHI", payload, 0)
        need(compat == 0, f"adb compat version {compat}")

    @staticmethod
    def kind(v):
        return v >> 28

    def _at(self, off, n):
        need(off + n <= len(self.p), f"value at {off}+{n} beyond the payload ({len(self.p)})")
        return self.p[off:off + n]

    def is_null(self, v):
        return v == 0

    def int(self, v):
        k, off = self.kind(v), v & 0x0FFFFFFF
        if k == 0x1:
            return off
        if k == 0x2:
            return struct.unpack("<I", self._at(off, 4))[0]
        if k == 0x3:
            return struct.unpack("<Q", self._at(off, 8))[0]
        raise ApkFormatError(f"expected an integer, got type {k:#x}")

    def blob(self, v):
        if v == 0:
            return b""
        k, off = self.kind(v), v & 0x0FFFFFFF
        width = {0x8: 1, 0x9: 2, 0xA: 4}.get(k)
        need(width is not None, f"expected a blob, got type {k:#x}")
        need(off % width == 0, "blob length prefix misaligned")
        n = int.from_bytes(self._at(off, width), "little")
        return bytes(self._at(off + width, n))

    def slots(self, v):
        """[None, slot1, slot2, ...] of a container. apk reads a value of either
        container type (0xd array, 0xe object) as one, and mkpkg does write its
        paths and files arrays with the object type."""
        if v == 0:
            return [None]
        k, off = self.kind(v), v & 0x0FFFFFFF
        need(k in (0xD, 0xE), f"expected a container, got type {k:#x}")
        need(off % 4 == 0, "object misaligned")
        n = struct.unpack("<I", self._at(off, 4))[0]
        need(n >= 1, "object with no count slot")
        return [None] + list(struct.unpack(f"<{n - 1}I", self._at(off + 4, 4 * (n - 1))))

    def obj(self, v):
        s = self.slots(v)
        return {i: s[i] for i in range(1, len(s)) if s[i] != 0}

    def arr(self, v):
        return self.slots(v)[1:]


def inflate_container(data):
    need(len(data) >= 4 and data[:3] == b"ADB", "not an adb file")
    if data[3:4] == b".":
        return data
    if data[3:4] == b"d":
        d = zlib.decompressobj(-15)
        out = d.decompress(data[4:]) + d.flush()
        need(d.eof and not d.unused_data, "trailing bytes after the deflate stream")
        return out
    if data[3:4] == b"c":
        alg, level = data[4], data[5]
        need(alg == 1, f"compression algorithm {alg} not supported here")
        d = zlib.decompressobj(-15)
        return d.decompress(data[6:]) + d.flush()
    raise ApkFormatError(f"unknown adb compression marker {data[3:4]!r}")


def split_blocks(container):
    need(container[:4] == b"ADB.", "missing ADB. magic")
    need(container[4:8] == b"pckg", f"schema {container[4:8]!r} is not a package")
    blocks, pos = [], 8
    while pos < len(container):
        need(pos % 8 == 0, "block not 8-byte aligned")
        need(pos + 4 <= len(container), "truncated block header")
        word = struct.unpack_from("<I", container, pos)[0]
        btype, raw = word >> 30, word & 0x3FFFFFFF
        need(btype != 3, "extended blocks are not expected in a package this size")
        need(raw >= 4 and pos + raw <= len(container), "block size out of range")
        payload = container[pos + 4:pos + raw]
        end = pos + raw + ((-raw) % 8)
        need(end <= len(container), "missing block padding")
        need(container[pos + raw:end] == b"\0" * (end - pos - raw), "non-zero block padding")
        blocks.append((btype, payload))
        pos = end
    order = "".join({0: "A", 1: "S", 2: "D"}[t] for t, _ in blocks)
    need(order[:1] == "A" and "A" not in order[1:], f"block order {order}: one ADB block first")
    need("S" not in order[order.find("D"):] if "D" in order else True, "SIG block after DATA")
    return blocks


def read_acl(db, v):
    f = db.obj(v)
    acl = {"mode": db.int(f[1]) if 1 in f else None,
           "user": db.blob(f.get(2, 0)).decode(), "group": db.blob(f.get(3, 0)).decode()}
    need(4 not in f, "xattrs not expected")
    return acl


def read_package(data):
    """Parse and verify; returns {'info':{}, 'scripts':{}, 'paths':[...], 'files':{path: {...}},
    'compression': ..., 'signed': bool}."""
    compression = {b".": "none", b"d": "deflate", b"c": "spec"}.get(data[3:4], "?")
    container = inflate_container(data)
    blocks = split_blocks(container)
    payload = blocks[0][1]
    db = Adb(payload)
    pkg = db.obj(db.root)
    need(set(pkg) <= {1, 2, 3, 4, 5}, f"unknown package fields {sorted(pkg)}")

    info = {}
    for slot, v in db.obj(pkg[1]).items():
        name = PKGINFO_NAMES.get(slot)
        need(name is not None, f"unknown pkginfo slot {slot}")
        if name in PKGINFO_INTS:
            info[name] = db.int(v)
        elif name in PKGINFO_LISTS:
            info[name] = db.arr(v)
        elif name in ("hashes", "repo-commit"):
            info[name] = db.blob(v).hex()
        else:
            info[name] = db.blob(v).decode()
    need("name" in info and "version" in info, "pkginfo without name or version")

    # unique id: SHA-256 prefix of the payload with the id bytes zeroed
    uid_v = db.obj(pkg[1]).get(3, 0)
    if uid_v:
        off = (uid_v & 0x0FFFFFFF) + 1
        n = len(db.blob(uid_v))
        zeroed = payload[:off] + b"\0" * n + payload[off + n:]
        need(hashlib.sha256(zeroed).digest()[:n].hex() == info["hashes"], "unique id does not match the payload")

    scripts = {}
    if 3 in pkg:
        for slot, v in db.obj(pkg[3]).items():
            need(slot in SCRIPT_NAMES, f"unknown script slot {slot}")
            scripts[SCRIPT_NAMES[slot]] = db.blob(v).decode()

    paths, files, index = [], {}, {}
    prev_dir = None
    for pi, dv in enumerate(db.arr(pkg.get(2, 0)), 1):
        d = db.obj(dv)
        dname = db.blob(d.get(1, 0)).decode()
        need(prev_dir is None or dname.encode() > prev_dir.encode(), f"paths not sorted at {dname!r}")
        prev_dir = dname
        dacl = read_acl(db, d[2]) if 2 in d else {"mode": 0o755, "user": "root", "group": "root"}
        paths.append({"name": dname, **dacl})
        prev_file = None
        for fi, fv in enumerate(db.arr(d.get(3, 0)), 1):
            f = db.obj(fv)
            fname = db.blob(f.get(1, 0)).decode()
            need(fname and "/" not in fname, f"bad file name {fname!r}")
            need(prev_file is None or fname.encode() > prev_file.encode(), f"files not sorted at {fname!r}")
            prev_file = fname
            need(6 not in f, "links and special files not expected")
            full = f"{dname}/{fname}" if dname else fname
            entry = {"size": db.int(f[3]) if 3 in f else 0, "mtime": db.int(f[4]) if 4 in f else 0,
                     "sha256": db.blob(f.get(5, 0)).hex(), **read_acl(db, f[2]), "data": None}
            need(len(entry["sha256"]) == 64, f"{full}: hash is not SHA-256")
            files[full] = entry
            index[(pi, fi)] = full

    for btype, body in blocks[1:]:
        if btype != 2:
            continue
        need(len(body) >= 8, "DATA block without its header")
        pi, fi = struct.unpack_from("<II", body, 0)
        need((pi, fi) in index, f"DATA block for unknown file {pi}/{fi}")
        entry = files[index[(pi, fi)]]
        need(entry["data"] is None, f"two DATA blocks for {index[(pi, fi)]}")
        content = body[8:]
        need(len(content) == entry["size"], f"{index[(pi, fi)]}: size {len(content)} != {entry['size']}")
        need(hashlib.sha256(content).hexdigest() == entry["sha256"], f"{index[(pi, fi)]}: hash mismatch")
        entry["data"] = content
    for path, entry in files.items():
        if entry["size"] == 0:
            need(entry["sha256"] == hashlib.sha256(b"").hexdigest(), f"{path}: empty file hash")
            entry["data"] = b""
        need(entry["data"] is not None, f"{path}: no DATA block")
    return {"info": info, "scripts": scripts, "paths": paths, "files": files,
            "compression": compression, "signed": any(t == 1 for t, _ in blocks)}


def main(argv):
    with open(argv[1], "rb") as f:
        pkg = read_package(f.read())
    for k, v in pkg["info"].items():
        print(f"info {k}: {v}")
    for k, v in pkg["scripts"].items():
        print(f"script {k}: {len(v)} bytes")
    for path, e in sorted(pkg["files"].items()):
        print(f"{e['mode']:04o} {e['user']}:{e['group']} {e['size']:>9} /{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
