#!/usr/bin/env python3
"""Keeps the seams of src/: fails when the pure layers reach for I/O or when a new import
cycle between modules appears.

Rules checked (test code excluded: `#[cfg(test)]` blocks and files declared under it):
  1. src/proto/ may import only proto; src/relay/ only relay and proto (so neither
     imports net/, the only place that touches sockets, clocks and the runtime).
  2. src/proto/ and src/relay/ use no runtime, socket, clock or file API: smol and the
     async-* crates, tokio, nix, futures_rustls, std::net sockets, Instant::now,
     SystemTime::now, std::fs, std::thread, std::process. (`Instant` as a value handed
     in is fine: the caller reads the clock.)
  3. No import cycle between modules, at two levels: the top-level modules (a directory
     of src/ counted as one) and the files, except the cycles the allowlist holds
     (scripts/layer-cycles.allow, one a line: its modules, space-separated). Every cycle
     found is printed; only one that no allowlisted line covers fails the check.

Modules are the files of src/ (`net/mod.rs` is `net`, `net/shared.rs` is `net::shared`);
an edge is any `use` or inline path through `crate::`, `super::`, `self::` or a child
module, resolved to the deepest module file it names (an item a `mod.rs` re-exports
resolves to the child defining it). A directory's `mod.rs` naming its own children
(declaring and re-exporting them) is no edge, and items of lib.rs/main.rs are no module
of their own (the crate root declares every module).

  4. The module map in docs/architecture.md (between the module-map markers) is the one
     this script generates from src/: every top-level module, the first sentence of its
     doc comment, its files and the modules it imports. `--write-map` rewrites it.

Usage: check-layers.py [--root DIR] [--allow FILE]   check the tree (default: this repo)
       check-layers.py --write-map                   regenerate the map in the docs
       check-layers.py --prove                       plant violations in scratch copies
                                                     and show that each one is caught
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_ALLOW = os.path.join(HERE, "layer-cycles.allow")

# Which modules each pure layer may import (top-level module names).
PURE_LAYERS = {"proto": {"proto"}, "relay": {"relay", "proto"}}
# Runtime, socket, clock and file APIs the pure layers must not name: (regex, what).
FORBIDDEN = [
    (r"\bsmol\b", "the smol runtime"),
    (r"\basync_(io|net|signal|executor|fs|process|channel|task|lock)\b", "an async runtime crate"),
    (r"\btokio\b", "the tokio runtime"),
    (r"\bnix\s*::", "nix (system calls)"),
    (r"\bfutures_rustls\b", "TLS streams (futures_rustls)"),
    (r"\b(TcpStream|TcpListener|UdpSocket|UnixStream|UnixListener)\b", "a socket type"),
    (r"\bInstant\s*::\s*now\b", "the clock (Instant::now)"),
    (r"\bSystemTime\s*::\s*now\b", "the clock (SystemTime::now)"),
    (r"\bstd\s*::\s*fs\b", "the file system (std::fs)"),
    (r"\bstd\s*::\s*thread\b", "threads (std::thread)"),
    (r"\bstd\s*::\s*process\b", "processes (std::process)"),
]


def strip_code(text):
    """Removes comments, string and char literals (keeps lifetimes and line breaks)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


CFG_TEST_BLOCK = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]\s*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+\w+\s*\{")
CFG_TEST_FILE = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]\s*(?:#\s*\[[^\]]*\]\s*)*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
CFG_TEST_ITEM = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]\s*(?:pub(?:\s*\([^)]*\))?\s+)?use\s+[^;]*;")


def drop_test_code(code):
    """Removes `#[cfg(test)] mod x { ... }` blocks and `#[cfg(test)] use ...;` items."""
    code = CFG_TEST_ITEM.sub("", code)
    while True:
        m = CFG_TEST_BLOCK.search(code)
        if not m:
            return code
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[:m.start()] + "\n" * code.count("\n", m.start(), j) + code[j:]


def expand_use(tree, keep_alias=False):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]; globs dropped, aliases dropped or
    kept as `path as name`."""
    tree = re.sub(r"\s+as\s+", " as:", tree)
    tree = re.sub(r"\s+", "", tree.replace(" as:", "@as:"))
    tree = tree.replace("@as:", " as:")
    if not keep_alias:
        tree = re.sub(r" as:\w+", "", tree)

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        return [p for p in parts if p]

    def walk(prefix, s):
        brace = s.find("{")
        if brace < 0:
            path = (prefix + s).rstrip(":")
            return [re.sub(r"::(\*|self)$", "", path).replace(" as:", " as ")]
        head = prefix + s[:brace]
        inner = s[brace + 1:s.rfind("}")]
        out = []
        for part in split_top(inner):
            out.extend(walk(head, part))
        return out

    return [p.lstrip(":") for p in walk("", tree)]


class Tree:
    def __init__(self, root):
        self.root = root
        self.src = os.path.join(root, "src")
        self.files = {}  # module tuple -> path
        for dirpath, _, names in os.walk(self.src):
            for name in names:
                if not name.endswith(".rs"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.src)[:-3].split(os.sep)
                if rel[-1] == "mod":
                    rel = rel[:-1]
                if rel in (["lib"], ["main"]):
                    rel = []
                if rel or name in ("lib.rs",):
                    self.files[tuple(rel)] = os.path.join(dirpath, name)
        self.code = {}
        self.test_only = set()
        for module, path in self.files.items():
            with open(path, encoding="utf-8") as f:
                code = strip_code(f.read())
            for child in CFG_TEST_FILE.findall(code):
                self.test_only.add(module + (child,))
            self.code[module] = drop_test_code(code)
        for module in list(self.test_only):
            self.test_only.update(m for m in self.files if m[:len(module)] == module)
        # What each mod.rs re-exports from its children: {module: {item: child module}}.
        self.reexports = {}
        for module, code in self.code.items():
            found = {}
            for m in re.finditer(r"\bpub(?:\s*\([^)]*\))?\s+use\s+([^;]*);", code):
                for path in expand_use(m.group(1), keep_alias=True):
                    path, _, alias = path.partition(" as ")
                    target = self.resolve(module, path, follow=False)
                    if target and target[:len(module)] == module and target != module:
                        found[alias or path.split("::")[-1]] = target
            self.reexports[module] = found

    def children(self, module):
        return {m[-1] for m in self.files if len(m) == len(module) + 1 and m[:-1] == module}

    def resolve(self, module, path, follow=True):
        """The module a path names, or None for an external crate or the crate root; with
        `follow`, an item a mod.rs re-exports resolves to the child that defines it."""
        segs = [s for s in path.split("::") if s]
        if not segs:
            return None
        if segs[0] == "crate":
            base, segs = (), segs[1:]
        elif segs[0] in ("super", "self"):
            base = module
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
        elif segs[0] in self.children(module):
            base = module
        else:
            return None
        target = base
        for seg in segs:
            if target + (seg,) in self.files:
                target = target + (seg,)
            elif follow and seg in self.reexports.get(target, {}):
                target = self.reexports[target][seg]
                break
            else:
                break
        return target or None

    def edges(self):
        """{module: {target: first line naming it}} for non-test code."""
        out = {}
        for module, code in self.code.items():
            if not module or module in self.test_only:
                continue
            found = out.setdefault(module, {})
            paths = []
            for m in re.finditer(r"\buse\s+([^;]*);", code):
                line = code.count("\n", 0, m.start()) + 1
                paths.extend((line, p) for p in expand_use(m.group(1)))
            no_use = re.sub(r"\buse\s+[^;]*;", lambda m: "\n" * m.group(0).count("\n"), code)
            for m in re.finditer(r"\b(?:crate|super|self)(?:\s*::\s*\w+)+", no_use):
                line = no_use.count("\n", 0, m.start()) + 1
                paths.append((line, re.sub(r"\s+", "", m.group(0))))
            for line, path in paths:
                target = self.resolve(module, path)
                # A parent's re-exports of its own children are its facade, not a
                # dependency: parent -> descendant edges are left out.
                if target and target[:len(module)] == module:
                    continue
                if target and target not in found:
                    found[target] = line
        return out


def name(module):
    return "::".join(module)


def sccs(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def one_cycle(graph, comp):
    """A concrete cycle through the first module of `comp`, for the message."""
    members, start = set(comp), comp[0]
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return [start] + path[::-1][1:] + [start] if path[-1] == start else path[::-1] + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def read_allow(path):
    allowed = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    allowed.append(set(line.split()))
    return allowed


def check(root, allow_path, quiet=False):
    """Returns the list of failures (strings); prints the cycles found."""
    say = (lambda *a: None) if quiet else print
    tree = Tree(root)
    edges = tree.edges()
    failures = []
    for module, targets in sorted(edges.items()):
        layer = module[0]
        if layer not in PURE_LAYERS:
            continue
        rel = os.path.relpath(tree.files[module], root)
        for target, line in sorted(targets.items()):
            if target[0] not in PURE_LAYERS[layer]:
                failures.append(f"{rel}:{line}: {layer}/ imports {name(target)} "
                                f"({layer}/ may import only {', '.join(sorted(PURE_LAYERS[layer]))})")
        code = tree.code[module]
        for pattern, what in FORBIDDEN:
            for m in re.finditer(pattern, code):
                line = code.count("\n", 0, m.start()) + 1
                failures.append(f"{rel}:{line}: {layer}/ uses {what}: {m.group(0)}")
    files = {name(m): {name(t) for t in ts} for m, ts in edges.items()}
    tops = {}
    for m, ts in edges.items():
        tops.setdefault(m[0], set()).update(t[0] for t in ts if t[0] != m[0])
    allowed = read_allow(allow_path)
    comps = []
    for level, graph in (("top-level", tops), ("file", files)):
        for comp in sccs(graph):
            comps.append((level, graph, comp))
    for level, graph, comp in comps:
        covered = any(set(comp) <= a for a in allowed)
        cycle = " -> ".join(one_cycle(graph, comp))
        say(f"{'allowed' if covered else 'NEW'} {level} cycle: {' '.join(comp)}  (e.g. {cycle})")
        if not covered:
            failures.append(f"new import cycle between {', '.join(comp)}: {cycle} "
                            f"(break it, or list it in {os.path.relpath(allow_path, REPO)})")
    for a in allowed:
        if not any(set(c) == a for _, _, c in comps):
            say(f"note: allowlisted cycle {' '.join(sorted(a))} is gone; remove its line")
    return failures


# Each plant: (file under src/, text appended, words the failure must contain).
PLANTS = [
    ("proto/frame.rs", "\npub use crate::net::listen as planted;\n", "proto/ imports net::listen"),
    ("relay/state.rs", "\npub fn planted() -> crate::net::Planted { todo!() }\n", "relay/ imports net"),
    ("relay/state.rs", "\npub fn planted() -> std::time::Instant { std::time::Instant::now() }\n",
     "Instant::now"),
    ("proto/key.rs", "\npub fn planted() -> std::time::SystemTime { std::time::SystemTime::now() }\n",
     "SystemTime::now"),
    ("proto/stun.rs", "\npub use smol::net::UdpSocket as Planted;\n", "the smol runtime"),
    ("relay/conn.rs", "\npub fn planted(p: &str) -> Vec<u8> { std::fs::read(p).unwrap_or_default() }\n",
     "std::fs"),
    ("proto/http.rs", "\npub type Planted = std::net::TcpStream;\n", "a socket type"),
    ("relay/mod.rs", "\npub use crate::cli as planted;\n", "relay/ imports cli"),
]


def prove(root, allow_path):
    status = 0
    base = check(root, allow_path, quiet=True)
    if base:
        print("the tree itself fails the check; fix that first:", *base, sep="\n  ")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(os.path.join(root, "src"), os.path.join(scratch, "src"))

        def attempt(label, want):
            nonlocal status
            failures = check(scratch, allow_path, quiet=True)
            hit = [f for f in failures if want in f]
            if hit:
                print(f"caught {label}: {hit[0]}")
            else:
                print(f"MISSED {label} (wanted '{want}'; got {failures})", file=sys.stderr)
                status = 1

        for rel, text, want in PLANTS:
            path = os.path.join(scratch, "src", rel)
            with open(path, encoding="utf-8") as f:
                original = f.read()
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
            attempt(f"src/{rel} +{text.strip()}", want)
            with open(path, "w", encoding="utf-8") as f:
                f.write(original)
        # A new cycle: two fresh modules naming each other.
        lib = os.path.join(scratch, "src", "lib.rs")
        with open(lib, "a", encoding="utf-8") as f:
            f.write("\nmod planted_a;\nmod planted_b;\n")
        for me, other in (("a", "b"), ("b", "a")):
            with open(os.path.join(scratch, "src", f"planted_{me}.rs"), "w", encoding="utf-8") as f:
                f.write(f"//! Planted.\nuse crate::planted_{other}::Thing{other.upper()};\n"
                        f"pub struct Thing{me.upper()};\n")
        attempt("a new cycle planted_a <-> planted_b", "new import cycle between planted_a, planted_b")
        # A cycle inside a directory, through super:: (how net/ names its siblings).
        net_a = os.path.join(scratch, "src", "relay", "planted_c.rs")
        net_b = os.path.join(scratch, "src", "relay", "planted_d.rs")
        with open(os.path.join(scratch, "src", "relay", "mod.rs"), "a", encoding="utf-8") as f:
            f.write("\nmod planted_c;\nmod planted_d;\n")
        with open(net_a, "w", encoding="utf-8") as f:
            f.write("use super::planted_d::D;\npub struct C;\n")
        with open(net_b, "w", encoding="utf-8") as f:
            f.write("pub struct D;\npub fn f() -> super::planted_c::C { super::planted_c::C }\n")
        attempt("a new cycle through super:: inside relay/", "relay::planted_c, relay::planted_d")
    print("layer check proof:", "every planted violation was caught" if status == 0 else "FAILED")
    return status


MAP_DOC = os.path.join("docs", "architecture.md")
MAP_BEGIN = "<!-- module-map:begin (generated by scripts/check-layers.py --write-map) -->"
MAP_END = "<!-- module-map:end -->"
# Table order: the pure layers first, then the rest by name, the I/O edge last.
MAP_FIRST = ["proto", "relay"]
MAP_LAST = ["net"]


def doc_summary(path):
    """First sentence of a file's leading `//!` comment."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("//!"):
                break
            text = line[3:].strip()
            if not text:
                break
            lines.append(text)
    text = " ".join(lines)
    end = re.search(r"[.:](\s|$)", text)
    return (text[: end.start() + 1] if end else text).rstrip(":") .strip()


def module_map(root):
    """The Markdown table of top-level modules, their files and what they import."""
    tree = Tree(root)
    edges = tree.edges()
    units = {}
    for module in tree.files:
        if module and module not in tree.test_only:
            units.setdefault(module[0], []).append(module)
    imports = {top: set() for top in units}
    for module, targets in edges.items():
        if module and module[0] in imports:
            imports[module[0]].update(t[0] for t in targets if t[0] != module[0])
    order = [u for u in MAP_FIRST if u in units]
    order += sorted(u for u in units if u not in MAP_FIRST + MAP_LAST)
    order += [u for u in MAP_LAST if u in units]
    rows = ["| module | what it holds | files | imports |", "| --- | --- | --- | --- |"]
    for top in order:
        root_path = tree.files[(top,)]
        is_dir = os.path.basename(root_path) == "mod.rs"
        label = f"`{top}/`" if is_dir else f"`{top}.rs`"
        files = sorted("/".join(m[1:]) + ".rs" for m in units[top] if len(m) > 1)
        summary = doc_summary(root_path).replace("|", "\\|")
        deps = ", ".join(f"`{d}`" for d in sorted(imports[top])) or "—"
        rows.append(f"| {label} | {summary} | {', '.join(files) or '—'} | {deps} |")
    return "\n".join(rows) + "\n"


def map_section(root):
    """(text of the docs file, start, end) of the text between the map markers."""
    path = os.path.join(root, MAP_DOC)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.find(MAP_BEGIN)
    end = text.find(MAP_END)
    if start < 0 or end < start:
        return text, None, None
    return text, start + len(MAP_BEGIN) + 1, end


def check_map(root):
    text, start, end = map_section(root)
    if start is None:
        return [f"{MAP_DOC}: no module map markers ({MAP_BEGIN} ... {MAP_END})"]
    if text[start:end] != module_map(root):
        return [f"{MAP_DOC}: the module map does not match src/ (run scripts/check-layers.py --write-map)"]
    return []


def write_map(root):
    text, start, end = map_section(root)
    if start is None:
        sys.exit(f"{MAP_DOC}: no module map markers")
    with open(os.path.join(root, MAP_DOC), "w", encoding="utf-8") as f:
        f.write(text[:start] + module_map(root) + text[end:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=REPO, help="repository root (default: this one)")
    ap.add_argument("--allow", default=DEFAULT_ALLOW, help="allowlisted cycles")
    ap.add_argument("--prove", action="store_true", help="plant violations and show they fail")
    ap.add_argument("--write-map", action="store_true", help="regenerate the docs' module map")
    a = ap.parse_args()
    if a.write_map:
        write_map(a.root)
        return
    if a.prove:
        sys.exit(prove(a.root, a.allow))
    failures = check(a.root, a.allow)
    if os.path.exists(os.path.join(a.root, MAP_DOC)):
        failures += check_map(a.root)
    for f in failures:
        print(f, file=sys.stderr)
    if failures:
        sys.exit(1)
    print("layers: proto/ and relay/ are pure; no import cycle beyond the allowlist")


if __name__ == "__main__":
    main()
