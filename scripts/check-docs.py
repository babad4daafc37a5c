#!/usr/bin/env python3
"""Checks that the docs say what their sources say (one source of truth).

- README keeps the two set-up commands.
- Every table row of docs/benchmarks.md is a row of bench/results/results.md, unchanged.
- README's "how fast on my router" table is router-cpu.md's estimate table, unchanged.
- The soak table of docs/security.md matches scripts/soak-results*/summary.txt.
- Fuzz figures in docs/security.md appear in fuzz/RESULTS.md.
- Bounds the docs quote are the bounds the tests assert (constants read from tests/).
- Every `§N.N` cited in src/ and tests/ (except after `RFC NNNN`) is a heading of docs/protocol.md.
- Relative links in README.md, CHANGELOG.md and docs/ point at files and headings that exist.

Usage: scripts/check-docs.py [--pending FILE]...   (FILE: a linked doc not written yet)
Prints one line per problem and exits 1 if there is any.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def problem(text):
    problems.append(text)


def table_rows(text):
    return [
        line
        for line in text.splitlines()
        if line.startswith("|") and not re.match(r"^\|\s*-", line)
    ]


def check_readme_commands():
    readme = read("README.md")
    for command in ("cargo run --release -- --dev", "scripts/test-all.sh"):
        if f"\n{command}\n" not in readme:
            problem(f"README.md: set-up command missing on its own line: {command}")


def check_benchmarks():
    results = set(read("bench/results/results.md").splitlines())
    for row in table_rows(read("docs/benchmarks.md")):
        if row not in results:
            problem(f"docs/benchmarks.md: row not in bench/results/results.md: {row}")


def check_router_speed():
    readme = read("README.md").splitlines()
    begin = [i for i, line in enumerate(readme) if line.startswith("<!-- BEGIN router-speed")]
    end = [i for i, line in enumerate(readme) if line == "<!-- END router-speed -->"]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        problem("README.md: no single router-speed block (bench/scripts/router_report.py --readme)")
        return
    ours = table_rows("\n".join(readme[begin[0] + 1:end[0]]))
    md = read("bench/results/router-cpu.md")
    section = md.split("## How fast on my router", 1)[-1]
    theirs = table_rows(section)
    if not ours or ours != theirs:
        problem("README.md: router-speed table differs from bench/results/router-cpu.md "
                "(rerun bench/scripts/router_report.py --readme README.md)")


def grouped(number):
    return f"{int(number):,}"


def check_soak():
    security = read("docs/security.md")
    for directory, label in (("scripts/soak-results-600", "600 s"), ("scripts/soak-results", "180 s")):
        fields = dict(re.findall(r"(\w+)=([\d.]+)", read(f"{directory}/summary.txt")))
        row = next((r for r in table_rows(security) if r.startswith(f"| {label} ")), None)
        if row is None:
            problem(f"docs/security.md: no soak row for {label}")
            continue
        expected = [
            grouped(fields["connects"]),
            f"| {fields['connect_failures']} |",
            f"{grouped(fields['sent'])} / {grouped(fields['received'])}",
            f"{grouped(fields['min_kib'])} … {grouped(fields['max_kib'])} KiB",
        ]
        if "slope_mib_per_min" in fields:
            expected.append(f"{fields['slope_mib_per_min']} MiB/min")
            expected.append(f"{fields['max_slope_mib_per_min']} MiB/min")
        for text in expected:
            if text not in row:
                problem(f"docs/security.md: soak {label} row lacks {text!r} ({directory}/summary.txt)")


def check_fuzz():
    results = read("fuzz/RESULTS.md")
    security = read("docs/security.md")
    section = security.split("## Fuzzing", 1)[-1].split("\n## ", 1)[0]
    for row in table_rows(section):
        for number in re.findall(r"\d{1,3}(?:,\d{3})+|\b\d{2,4}\b", row):
            if number not in results:
                problem(f"docs/security.md: fuzz figure {number} not in fuzz/RESULTS.md")


def constant(path, name):
    """Value of `const NAME: T = EXPR;` in a test file, with `a << b` evaluated."""
    match = re.search(rf"const {name}: [^=]+= ([^;]+);", read(path))
    if match is None:
        problem(f"{path}: constant {name} not found")
        return None
    expr = re.sub(r"(?<=\d)_(?=\d)", "", match.group(1).strip())
    seconds = re.fullmatch(r"Duration::from_secs\((\d+)\)", expr)
    if seconds:
        return int(seconds.group(1))
    shifted = re.fullmatch(r"(\d+) << (\d+)", expr)
    if shifted:
        return int(shifted.group(1)) << int(shifted.group(2))
    try:
        return float(expr) if "." in expr else int(expr)
    except ValueError:
        problem(f"{path}: constant {name} = {expr} is not a plain number")
        return None


def check_asserted_bounds():
    limits = read("docs/admission-and-limits.md")
    security = read("docs/security.md")
    tolerance = constant("tests/limits.rs", "TOLERANCE")
    if tolerance is not None and f"within {round(tolerance * 100)} %" not in limits:
        problem(f"docs/admission-and-limits.md: tests/limits.rs asserts within {tolerance:.0%}")
    checks = [
        ("tests/hostile.rs", "FLOOD_RSS_GROWTH_KIB", lambda v: f"at most {v >> 10} MiB above"),
        ("tests/hostile.rs", "GROWTH_KIB", lambda v: f"grows at most {v >> 10} MiB"),
        ("tests/hostile.rs", "STALL_RELEASE_TIMEOUT", lambda v: f"within {v} s"),
        ("tests/hostile.rs", "RSS_MARGIN_PERCENT", lambda v: f"{v} %) of the first round"),
        ("tests/hostile.rs", "FLOOD_PACKETS", lambda v: f"{v:,} × 16 KiB"),
        ("tests/soak.rs", "WARM_UP_PERCENT", lambda v: f"warm-up ({v} % of the run"),
        ("tests/soak.rs", "MIN_DELIVERED_PERCENT", lambda v: f"at least {v} % of packets"),
    ]
    for path, name, text in checks:
        value = constant(path, name)
        if value is not None and text(value) not in security:
            problem(f"docs/security.md: should say {text(value)!r} ({path} {name} = {value})")


def check_protocol_sections():
    headings = set(re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", read("docs/protocol.md"), re.M))
    for top in ("src", "tests"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                # "RFC 6455 §5.2" cites the RFC, not our notes.
                for ref in re.findall(r"(?<!RFC \d{4} )§(\d+(?:\.\d+)?)", text):
                    if ref not in headings:
                        problem(f"{os.path.relpath(path, ROOT)}: §{ref} is not a heading of docs/protocol.md")


def anchors(path):
    found = set()
    for line in read(path).splitlines():
        match = re.match(r"#+ (.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def check_links(pending):
    docs = ["README.md", "CHANGELOG.md"] + sorted(
        os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md")
    )
    for doc in docs:
        for link in re.findall(r"\]\(([^)\s]+)\)", read(doc)):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if not os.path.exists(os.path.join(ROOT, target)):
                if target not in pending:
                    problem(f"{doc}: link to missing {link}")
                continue
            if anchor and target.endswith(".md") and anchor not in anchors(target):
                problem(f"{doc}: no heading for #{anchor} in {target}")


def main(argv):
    pending = set()
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--pending" and args:
            pending.add(os.path.normpath(args.pop(0)))
        else:
            print(__doc__.strip().splitlines()[-2])
            return 2
    check_readme_commands()
    check_benchmarks()
    check_router_speed()
    check_soak()
    check_fuzz()
    check_asserted_bounds()
    check_protocol_sections()
    check_links(pending)
    for text in problems:
        print(text)
    print(f"check-docs: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
