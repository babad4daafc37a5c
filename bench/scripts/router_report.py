#!/usr/bin/env python3
"""Turns bench/router-cpu.sh's raw lines into router-cpu.tsv and router-cpu.md.

Instructions per login and per relayed byte come from differencing two counted runs of
the same server (b - a); the "how fast on my router" table turns instructions per byte
into Mbit/s at a router CPU's clock under a stated instructions-per-cycle assumption.
"""
import argparse
import json
import os

# Router classes: which measured build runs on them, clock, cores, and the assumed
# instructions per cycle (IPC) of the relay's code on that core. The IPC figures are
# assumptions, not measurements: in-order single-issue MIPS32 cores rarely sustain more
# than ~0.5 on code with this many loads and branches; the partially dual-issue Cortex-A7
# ~0.7; the dual-issue Cortex-A53 ~0.8.
ROUTERS = [
    ("ath79 (QCA9533/9563), MIPS 24Kc", "mips_24kc", 650, 775, 1, 0.5),
    ("ramips mt7621, MIPS 1004Kc", "mipsel_24kc", 880, 880, 2, 0.5),
    ("ipq40xx, Cortex-A7", "arm_cortex-a7_neon-vfpv4", 717, 717, 4, 0.7),
    ("filogic mt7981, Cortex-A53", "aarch64_cortex-a53", 1300, 1300, 2, 0.8),
]
SERVERS = ("tinyderp", "derper")
# The README's copy of the estimate table sits between these lines; `--readme` rewrites it
# and scripts/check-docs.py checks it against router-cpu.md.
README_BEGIN = ("<!-- BEGIN router-speed: generated from bench/results/router-cpu.md by "
                "bench/scripts/router_report.py --readme; do not edit -->")
README_END = "<!-- END router-speed -->"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def figures(rows):
    """{(arch, server): {...}} with per-login and per-byte instruction counts."""
    out = {}
    for r in rows:
        if r.get("scenario") not in ("logins", "relay"):
            continue
        key = (r["arch"], r["server"])
        d = out.setdefault(key, {"arch": r["arch"], "server": r["server"]})
        a, b = r["a"], r["b"]
        diff = b["insns"] - a["insns"]
        if r["scenario"] == "logins":
            n = b["load"]["logged_in"] - a["load"]["logged_in"]
            d["bytes"] = r.get("bytes")
            d["logins"] = n
            d["insns_per_login"] = diff / n if n > 0 else None
            d["login_failures"] = a["load"]["failures"] + b["load"]["failures"]
        else:
            n = b["load"]["received_packets"] - a["load"]["received_packets"]
            d["packets"] = n
            d["insns_per_packet"] = diff / n if n > 0 else None
            d["insns_per_byte"] = diff / (n * r["size"]) if n > 0 else None
            d["lost"] = (b["load"]["sent_packets"] - b["load"]["received_packets"]) + (
                a["load"]["sent_packets"] - a["load"]["received_packets"]
            )
    return out


SUITE_NAMES = (("chacha", "ChaCha20-Poly1305"), ("aes128", "AES-128-GCM"),
               ("aes256", "AES-256-GCM"))
# derp-load's name of the suite the server chose, as in the table.
CHOSEN_NAMES = {"TLS13_CHACHA20_POLY1305_SHA256": "ChaCha20-Poly1305",
                "TLS13_AES_128_GCM_SHA256": "AES-128-GCM",
                "TLS13_AES_256_GCM_SHA384": "AES-256-GCM"}


def suite_figures(rows):
    """{arch: {suite: instructions per relayed byte}} from the one-suite relay runs, and
    {arch: suite the server chose} from the ordinary relay run."""
    per_suite, chosen = {}, {}
    for r in rows:
        if r.get("scenario") == "relay-suite":
            a, b = r["a"], r["b"]
            n = b["load"]["received_packets"] - a["load"]["received_packets"]
            if n > 0:
                per_suite.setdefault(r["arch"], {})[r["suite"]] = (
                    (b["insns"] - a["insns"]) / (n * r["size"]))
        elif r.get("scenario") == "relay" and r.get("server") == "tinyderp":
            name = r["b"]["load"].get("tls_suite")
            chosen[r["arch"]] = CHOSEN_NAMES.get(name, name or "n/a")
    return per_suite, chosen


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def mbps(clock_mhz, ipc, per_byte):
    """Relayed payload Mbit/s of one core: clock x IPC instructions/s over instr/byte."""
    if not per_byte:
        return None
    return clock_mhz * 1e6 * ipc / per_byte * 8 / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme", help="also rewrite the estimate table in this README")
    ap.add_argument("raw")
    args = ap.parse_args()
    rows = load(args.raw)
    figs = figures(rows)
    machine = next((r for r in rows if r.get("scenario") == "machine"), {})

    cols = ["arch", "server", "bytes", "logins", "insns_per_login", "packets",
            "insns_per_packet", "insns_per_byte", "login_failures", "lost"]
    with open(os.path.join(args.out, "router-cpu.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for key in sorted(figs):
            d = figs[key]
            f.write("\t".join(
                f"{d.get(c):.2f}" if isinstance(d.get(c), float) else str(d.get(c, ""))
                for c in cols) + "\n")

    arches = sorted({k[0] for k in figs})
    md = []
    md.append("# Router CPUs: instructions per login and per relayed byte")
    md.append("")
    md.append("Generated by `bench/router-cpu.sh` from `router-cpu.jsonl` (do not edit by hand).")
    md.append("")
    md.append("Each server's router build runs under qemu-user "
              f"({machine.get('qemu', 'qemu-user')}) with an instruction-counting TCG plugin "
              "(`bench/qemu-plugin/insncount.c`): every guest instruction the server executes "
              "in user space is counted, on every thread. Kernel work (TCP, copies, "
              "syscalls) runs on the host and is **not** counted. Each figure is the "
              "difference of two runs that differ only in the number of logins or of "
              "relayed 1400-byte packets, so start-up and shutdown cancel (the count is taken "
              "when the load is done; derper's start-up varies by ~10^8 instructions from run "
              "to run, which is why the differences are megabytes). tinyderp is "
              "`cross/build.sh`'s static musl build; derper is the pinned upstream release "
              "built with `GOARCH=mips`/`mipsle` `GOMIPS=softfloat`, `GOARCH=arm GOARM=7`, "
              "`GOARCH=arm64`.")
    md.append("")
    md.append("| arch | server | binary bytes | instr/login | instr/relayed byte | "
              "instr/1400 B packet | tinyderp / derper per byte |")
    md.append("|---|---|---:|---:|---:|---:|---:|")
    for arch in arches:
        t = figs.get((arch, "tinyderp"), {})
        g = figs.get((arch, "derper"), {})
        ratio = None
        if t.get("insns_per_byte") and g.get("insns_per_byte"):
            ratio = t["insns_per_byte"] / g["insns_per_byte"]
        for name, d in (("tinyderp", t), ("derper", g)):
            if not d:
                continue
            md.append(f"| {arch} | {name} | {fmt(d.get('bytes'))} | "
                      f"{fmt(d.get('insns_per_login'))} | {fmt(d.get('insns_per_byte'), 1)} | "
                      f"{fmt(d.get('insns_per_packet'))} | "
                      f"{fmt(ratio, 2) + 'x' if name == 'tinyderp' and ratio else ''} |")
    # Before the estimate: scripts/check-docs.py takes every table after its heading as
    # the README's copy.
    per_suite, chosen = suite_figures(rows)
    if per_suite:
        md.append("")
        md.append("## TLS cipher suites (tinyderp)")
        md.append("")
        md.append("tinyderp's instructions per relayed byte with the load tool offering one "
                  "TLS 1.3 suite at a time, ring's code for this CPU: portable C on MIPS, "
                  "NEON on ARMv7, the ARMv8 crypto extensions on aarch64 (the emulated "
                  "Cortex-A53 has them, as most router A53s do). The server's "
                  "preference (src/cert/provider.rs) follows this table; \"server's "
                  "choice\" is what it picked when offered all suites.")
        md.append("")
        md.append("| arch | server's choice | " + " | ".join(
            label + " instr/B" for _, label in SUITE_NAMES) + " |")
        md.append("|---|---|" + "---:|" * len(SUITE_NAMES))
        for arch in sorted(per_suite):
            cells = [fmt(per_suite[arch].get(key), 1) for key, _ in SUITE_NAMES]
            md.append(f"| {arch} | {chosen.get(arch, 'n/a')} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("## How fast on my router (ESTIMATE)")
    md.append("")
    md.append("Relayed Mbit/s per core = clock x IPC / (instructions per relayed byte) x 8. "
              "**This is an estimate, not a measurement on a router.** Assumptions: the "
              "instructions per cycle (IPC) in the table (in-order MIPS32 0.5, Cortex-A7 "
              "0.7, Cortex-A53 0.8); the core does nothing but relay; and the kernel's TCP "
              "work, which qemu-user does not count, is left out, so a real router relays "
              "less (on slow cores the kernel's share is of the same order as the relay's). "
              "A multi-core router can spread different clients over its cores; the "
              "figures are for one.")
    md.append("")
    speed_start = len(md)
    md.append("| router class | build measured | clock MHz | IPC assumed | "
              "tinyderp instr/B | tinyderp Mbit/s per core | derper instr/B | "
              "derper Mbit/s per core |")
    md.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, arch, lo, hi, cores, ipc in ROUTERS:
        t = figs.get((arch, "tinyderp"), {}).get("insns_per_byte")
        g = figs.get((arch, "derper"), {}).get("insns_per_byte")
        clock = f"{lo}" if lo == hi else f"{lo}-{hi}"

        def rate(per_byte):
            if not per_byte:
                return "not measured"
            a, b = mbps(lo, ipc, per_byte), mbps(hi, ipc, per_byte)
            return fmt(a, 1) if lo == hi else f"{fmt(a, 1)}-{fmt(b, 1)}"

        md.append(f"| {label} ({cores} cores) | {arch} | {clock} | {ipc} | "
                  f"{fmt(t, 1) if t else 'not measured'} | {rate(t)} | "
                  f"{fmt(g, 1) if g else 'not measured'} | {rate(g)} |")
    speed_table = md[speed_start:]
    md.append("")
    md.append("Run parameters: " + ", ".join(
        f"{k[1]} on {k[0]}: {figs[k].get('logins', '?')} logins and "
        f"{figs[k].get('packets', '?')} packets counted (differences)"
        for k in sorted(figs)) + ".")
    problems = [f"{k[1]} on {k[0]}: {figs[k].get('login_failures', 0)} failed logins, "
                f"{figs[k].get('lost', 0)} packets lost"
                for k in sorted(figs)
                if figs[k].get("login_failures") or figs[k].get("lost")]
    if problems:
        md.append("")
        md.append("Problems: " + "; ".join(problems) + ".")
    md.append("")
    with open(os.path.join(args.out, "router-cpu.md"), "w") as f:
        f.write("\n".join(md))
    if args.readme:
        write_readme(args.readme, speed_table)


def write_readme(path, table):
    """Replaces the lines between README_BEGIN and README_END with the estimate table."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        start, end = lines.index(README_BEGIN), lines.index(README_END)
    except ValueError:
        raise SystemExit(f"{path}: no {README_BEGIN!r} ... {README_END!r} block")
    lines[start + 1:end] = table
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
