#!/usr/bin/env python3
"""Turns the JSON lines of bench/run.sh into the results table, the goal verdicts and the
plots (tinyderp vs upstream derper). With --smoke it only checks that the harness worked.

Usage: report.py --out DIR raw.jsonl     (writes DIR/results.md and DIR/*.png)
       report.py --smoke raw.jsonl       (prints checks and "N passed, N failed")
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

SERVERS = ("tinyderp", "derper")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def by(rows, scenario, server, **match):
    out = []
    for r in rows:
        if r.get("scenario") != scenario or r.get("server") != server:
            continue
        if all(r.get(k) == v for k, v in match.items()):
            out.append(r)
    return out


def summarize(rows):
    """Median of each metric over the repetitions, per server."""
    s = {}
    for server in SERVERS:
        m = {}
        m["idle_rss_kib"] = med([r["rss_kib"] for r in by(rows, "idle_rss", server)])
        m["idle_anon_kib"] = med([r.get("rss_anon_kib") for r in by(rows, "idle_rss", server)])
        m["idle_file_kib"] = med([r.get("rss_file_kib") for r in by(rows, "idle_rss", server)])
        idle = by(rows, "idle", server)
        m["kib_per_client"] = med([r["rss_kib_per_client"] for r in idle])
        steps = defaultdict(list)
        rates = []
        for r in idle:
            for st in r["steps"]:
                if st.get("server"):
                    steps[st["clients"]].append(st["server"]["rss_kib"])
                rates.append(st["handshakes_per_sec"])
        m["rss_by_clients"] = {c: med(v) for c, v in sorted(steps.items())}
        m["logins_per_sec"] = med(rates)
        probe = by(rows, "relay", server, pairs=0)
        m["idle_p50_us"] = med([r["latency"]["p50_us"] for r in probe if r.get("latency")])
        m["idle_p99_us"] = med([r["latency"]["p99_us"] for r in probe if r.get("latency")])
        pairs = sorted({r["pairs"] for r in rows if r.get("scenario") == "relay" and r["pairs"] > 0})
        m["by_pairs"] = {}
        for p in pairs:
            runs = by(rows, "relay", server, pairs=p)
            if not runs:
                continue
            m["by_pairs"][p] = {
                "mbps": med([r["relayed_mbps"] for r in runs]),
                "pps": med([r["relayed_pps"] for r in runs]),
                "mbps_per_core": med([r["mbps_per_server_core"] for r in runs]),
                "cpu_cores": med([r["server_cpu_cores"] for r in runs]),
                "loss": med([r["loss"] for r in runs]),
                "p50_us": med([r["latency"]["p50_us"] for r in runs if r.get("latency")]),
                "p99_us": med([r["latency"]["p99_us"] for r in runs if r.get("latency")]),
                "rss_kib": med([r["server_rss_kib"] for r in runs]),
                "runs": len(runs),
            }
        m["open"] = {}
        for r in by(rows, "relay_open", server):
            m["open"].setdefault(r["pairs"], []).append(r)
        for p, runs in list(m["open"].items()):
            m["open"][p] = {
                "mbps": med([r["relayed_mbps"] for r in runs]),
                "loss": med([r["loss"] for r in runs]),
                "probe_answered": med([r["probe_received"] / r["probe_sent"] if r["probe_sent"] else None for r in runs]),
                "p99_us": med([r["latency"]["p99_us"] for r in runs if r.get("latency") and r["latency"]["count"]]),
            }
        cg = by(rows, "instr_logins", server)
        m["instr_per_login"] = (cg[0]["b"] - cg[0]["a"]) / cg[0]["logins"] if cg else None
        cg = by(rows, "instr_relay", server)
        if cg:
            c = cg[0]
            m["instr_per_byte"] = (c["b"] - c["a"]) / (c["packets"] * c["size"])
            m["instr_per_packet"] = (c["b"] - c["a"]) / c["packets"]
        else:
            m["instr_per_byte"] = m["instr_per_packet"] = None
        m["instr_per_byte_by_suite"] = {
            c["suite"]: (c["b"] - c["a"]) / (c["packets"] * c["size"])
            for c in by(rows, "instr_relay_suite", server)}
        m["static_idle_rss_kib"] = med([r["rss_kib"] for r in by(rows, "idle_rss", server + "_static")])
        b = by(rows, "binary", server)
        m["binary_bytes"] = b[0]["bytes"] if b else None
        s[server] = m
    return s


def fmt(v, digits=1, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v:,}{unit}"


def ratio(a, b, digits=2):
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.{digits}f}×"


def pick(m, pairs, key):
    return (m["by_pairs"].get(pairs) or {}).get(key)


def goals(t, d):
    """(goal, figure, met) rows; met is None when the figure is missing."""
    rows = []

    def add(goal, value, text, ok):
        rows.append((goal, text if value is not None else "not measured", ok if value is not None else None))

    v = t.get("static_idle_rss_kib") or t["idle_rss_kib"]
    which = "static build" if t.get("static_idle_rss_kib") else "glibc dynamic build"
    add("idle RSS ≤ 2 MiB", v, f"{fmt(v and v / 1024, 2)} MiB ({which}; dynamic: {fmt(t['idle_rss_kib'] and t['idle_rss_kib'] / 1024, 2)} MiB, anonymous {fmt(t['idle_anon_kib'], 0)} KiB)", v is not None and v <= 2048)
    v = t["kib_per_client"]
    add("≤ 16 KiB per idle client", v, f"{fmt(v, 1)} KiB", v is not None and v <= 16)
    a, b = pick(t, 20, "mbps_per_core"), pick(d, 20, "mbps_per_core")
    r = a / b if a and b else None
    add("≥ 2× derper's throughput per core (20 pairs, 1400 B)", r, f"{fmt(r, 2)}× ({fmt(a, 0)} vs {fmt(b, 0)} Mbit/s per core)", r is not None and r >= 2)
    a, b = pick(t, 100, "mbps"), pick(t, 20, "mbps")
    r = a / b if a and b else None
    add("100-pair throughput ≥ 90 % of 20-pair", r, f"{fmt(r and r * 100, 0)} % ({fmt(a, 0)} vs {fmt(b, 0)} Mbit/s)", r is not None and r >= 0.9)
    a, b = pick(t, 20, "p99_us"), t["idle_p99_us"]
    r = a / b if a and b else None
    add("p99 at full load ≤ 1.2× idle p99", r, f"{fmt(r, 2)}× ({fmt(a, 0)} µs vs {fmt(b, 0)} µs)", r is not None and r <= 1.2)
    v = t["instr_per_login"]
    add("≤ 2.5 M server instructions per new client", v, f"{fmt(v and v / 1e6, 2)} M", v is not None and v <= 2.5e6)
    return rows


def write_markdown(s, out, raw_rows):
    t, d = s["tinyderp"], s["derper"]
    reps = max([r.get("rep", 0) for r in raw_rows] + [0])
    lines = []
    lines.append("| metric | tinyderp | derper | tinyderp/derper |")
    lines.append("| --- | ---: | ---: | ---: |")

    def row(name, a, b, digits=1, unit=""):
        lines.append(f"| {name} | {fmt(a, digits, unit)} | {fmt(b, digits, unit)} | {ratio(a, b)} |")

    row("binary size (stripped), bytes", t["binary_bytes"], d["binary_bytes"])
    row("idle RSS, KiB (cert loaded, no clients)", t["idle_rss_kib"], d["idle_rss_kib"], 0)
    row("  of which anonymous (heap, stacks), KiB", t["idle_anon_kib"], d["idle_anon_kib"], 0)
    row("  of which file-backed (binary, shared libraries), KiB", t["idle_file_kib"], d["idle_file_kib"], 0)
    st = med([r["rss_kib"] for r in raw_rows if r.get("scenario") == "idle_rss" and r.get("server") == "tinyderp_static"])
    if st is not None:
        row("idle RSS, KiB, tinyderp linked statically (as on the router)", st, d["idle_rss_kib"], 0)
    for c in sorted(set(t["rss_by_clients"]) | set(d["rss_by_clients"])):
        row(f"RSS with {c:,} idle clients, KiB", t["rss_by_clients"].get(c), d["rss_by_clients"].get(c), 0)
    row("RSS per idle client (slope), KiB", t["kib_per_client"], d["kib_per_client"])
    row("logins per second (TLS + DERP, 32 concurrent)", t["logins_per_sec"], d["logins_per_sec"], 0)
    for p in sorted(set(t["by_pairs"]) | set(d["by_pairs"])):
        row(f"relayed Mbit/s, {p} pairs, 1400 B, 32 in flight per pair", pick(t, p, "mbps"), pick(d, p, "mbps"), 0)
        row(f"  server CPU (cores), {p} pairs", pick(t, p, "cpu_cores"), pick(d, p, "cpu_cores"), 2)
        row(f"  Mbit/s per server core, {p} pairs", pick(t, p, "mbps_per_core"), pick(d, p, "mbps_per_core"), 0)
        row(f"  loss, {p} pairs", pick(t, p, "loss"), pick(d, p, "loss"), 4)
        row(f"  probe p99 µs under load, {p} pairs", pick(t, p, "p99_us"), pick(d, p, "p99_us"), 0)
    for p in sorted(set(t["open"]) | set(d["open"])):
        o_t, o_d = t["open"].get(p, {}), d["open"].get(p, {})
        row(f"open loop, {p} pairs: delivered Mbit/s", o_t.get("mbps"), o_d.get("mbps"), 0)
        row(f"  open loop, {p} pairs: loss", o_t.get("loss"), o_d.get("loss"), 3)
        row(f"  open loop, {p} pairs: probe packets answered (fraction)", o_t.get("probe_answered"), o_d.get("probe_answered"), 3)
        row(f"  open loop, {p} pairs: probe p99 µs", o_t.get("p99_us"), o_d.get("p99_us"), 0)
    row("probe p50 µs, idle (64 B ping/echo, 2 traversals)", t["idle_p50_us"], d["idle_p50_us"], 0)
    row("probe p99 µs, idle", t["idle_p99_us"], d["idle_p99_us"], 0)
    row("instructions per relayed byte (cachegrind)", t["instr_per_byte"], d["instr_per_byte"], 1)
    row("instructions per relayed 1400 B packet (cachegrind)", t["instr_per_packet"], d["instr_per_packet"], 0)
    for suite, label in (("chacha", "ChaCha20-Poly1305"), ("aes128", "AES-128-GCM"),
                         ("aes256", "AES-256-GCM")):
        v = t["instr_per_byte_by_suite"].get(suite)
        if v is not None:
            row(f"  instructions per relayed byte, {label} only (cachegrind)", v, None, 1)
    row("instructions per new client (TLS + login, cachegrind)", t["instr_per_login"], d["instr_per_login"], 0)
    table = "\n".join(lines)

    g = ["| goal | figure | met |", "| --- | --- | --- |"]
    for goal, text, ok in goals(t, d):
        g.append(f"| {goal} | {text} | {'yes' if ok else ('no' if ok is not None else '–')} |")
    goals_table = "\n".join(g)

    machine = next((r for r in raw_rows if r.get("scenario") == "machine"), {})
    loads = [r["load1"] for r in raw_rows if "load1" in r and r.get("scenario") != "machine"]
    with open(f"{out}/results.md", "w") as f:
        f.write(f"# Benchmark results\n\nMedians of {reps} A/B-alternated repetitions "
                "(instruction counts and sizes from one run each). Generated by "
                "`bench/scripts/report.py` from `raw.jsonl`.\n\n")
        if machine:
            f.write(f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
                    f"{machine.get('mem_gib')} GiB, Linux {machine.get('kernel')}; "
                    f"{machine.get('rustc')}; upstream {machine.get('derper')}. "
                    "Server pinned to core 0, load tool to core 1, loopback, TLS 1.3.\n")
        if loads:
            f.write(f"1-minute load average while measuring: median {statistics.median(loads):.1f}, "
                    f"max {max(loads):.1f} (other jobs shared the machine).\n\n")
        f.write(table + "\n\n## Goals (tinyderp)\n\n" + goals_table + "\n\n")
        f.write("![relayed throughput vs pairs](throughput_vs_pairs.png)\n\n")
        f.write("![RSS vs idle clients](rss_vs_clients.png)\n")
    return table, goals_table


def plot(s, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for server in SERVERS:
        bp = s[server]["by_pairs"]
        if bp:
            xs = sorted(bp)
            ax.plot(xs, [bp[x]["mbps"] for x in xs], marker="o", label=f"{server} (Mbit/s)")
            ax.plot(xs, [bp[x]["mbps_per_core"] for x in xs], marker="x", linestyle="--",
                    label=f"{server} (Mbit/s per server core)")
    ax.set_xlabel("client pairs (1400 B packets, 32 in flight per pair)")
    ax.set_ylabel("relayed Mbit/s")
    ax.set_title("Relayed throughput, server pinned to one core")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{out}/throughput_vs_pairs.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for server in SERVERS:
        m = s[server]
        pts = dict(m["rss_by_clients"])
        if m["idle_rss_kib"] is not None:
            pts[0] = m["idle_rss_kib"]
        if pts:
            xs = sorted(pts)
            ax.plot(xs, [pts[x] / 1024 for x in xs], marker="o", label=server)
    ax.set_xlabel("idle connected clients")
    ax.set_ylabel("server RSS, MiB")
    ax.set_title("Server memory vs idle clients")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/rss_vs_clients.png", dpi=100)
    plt.close(fig)


def every(items, ok):
    """True when there is at least one item and `ok` holds for each (all([]) is true,
    and a check over nothing must not pass)."""
    items = list(items)
    return bool(items) and all(ok(item) for item in items)


def smoke(rows, servers=SERVERS):
    """Checks that each server in `servers` has every record a smoke run writes. A server
    with no record at all fails (it did not run); instruction counts, which need valgrind,
    are reported as skipped when no server has any."""
    checks = []

    def check(name, ok):
        checks.append((name, bool(ok)))
        print(f"{'ok  ' if ok else 'FAIL'} {name}")

    instr_ran = any(r.get("scenario", "").startswith("instr_") for r in rows)
    if not instr_ran:
        print("SKIPPED instruction counts: no instr_* records (valgrind not run)")
    for server in servers:
        check(f"{server}: records present", any(r.get("server") == server for r in rows))
        idle = by(rows, "idle", server)
        check(f"{server}: idle run recorded", idle)
        for r in idle:
            check(f"{server}: idle steps recorded", r["steps"])
            for st in r["steps"]:
                check(f"{server}: {st['clients']} idle clients, no login failure", st["failures"] == 0)
            want = max(st["clients"] for st in r["steps"]) if r["steps"] else -1
            check(f"{server}: idle clients all logged in", r["steps"] and r["steps"][-1]["clients"] == want)
        check(f"{server}: idle RSS sampled", every(by(rows, "idle_rss", server), lambda r: r["rss_kib"] > 0))
        relays = by(rows, "relay", server)
        check(f"{server}: relay runs recorded", relays)
        check(f"{server}: relay runs with traffic recorded", any(r["pairs"] > 0 for r in relays))
        for r in relays:
            p = r["pairs"]
            check(f"{server}: {p} pairs all logged in", r["login_failures"] == 0 and r["clients_logged_in"] == 2 * p)
            if p > 0:
                check(f"{server}: {p} pairs relayed packets", r["received_packets"] > 0 and r["relayed_mbps"] > 0)
                check(f"{server}: {p} pairs server CPU sampled", r["server_cpu_seconds"] > 0)
            check(f"{server}: {p} pairs latency probe answered", r.get("latency") and r["latency"]["count"] > 0)
        if instr_ran:
            for sc in ("instr_logins", "instr_relay"):
                check(f"{server}: {sc} counted", every(by(rows, sc, server), lambda r: r["b"] > r["a"] > 0))
        check(f"{server}: binary size", every(by(rows, "binary", server), lambda r: r["bytes"] > 0))
    passed = sum(ok for _, ok in checks)
    failed = len(checks) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--servers", default=" ".join(SERVERS),
                    help="servers the smoke run must have measured (default: both)")
    a = ap.parse_args()
    rows = load(a.raw)
    if a.smoke:
        sys.exit(smoke(rows, a.servers.split()))
    s = summarize(rows)
    table, goals_table = write_markdown(s, a.out, rows)
    plot(s, a.out)
    print(table)
    print()
    print(goals_table)


if __name__ == "__main__":
    main()
