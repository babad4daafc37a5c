"""Draws the soak RSS curve: server RSS over time, the least-squares line fitted to the
samples after the warm-up (its slope is what the soak judges), and the client connects on
a second axis. Usage: soak_plot.py soak.csv summary.txt out.png"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path, summary_path, png_path):
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds = [int(row["seconds"]) for row in rows]
    rss_mib = [int(row["rss_kib"]) / 1024 for row in rows]
    connects = [int(row["connects"]) for row in rows]
    summary = {}
    with open(summary_path) as handle:
        for word in handle.read().split():
            if "=" in word:
                key, value = word.split("=", 1)
                summary[key] = value
    warm_up = int(summary.get("warm_up_s", "0"))

    fig, rss_axis = plt.subplots(figsize=(9, 4.5), dpi=100)
    rss_axis.plot(seconds, rss_mib, color="tab:blue", label="server RSS (MiB)")
    if "fit_slope_kib_per_s" in summary and seconds:
        intercept = float(summary["fit_intercept_kib"])
        slope = float(summary["fit_slope_kib_per_s"])
        xs = [warm_up, seconds[-1]]
        rss_axis.plot(xs, [(intercept + slope * x) / 1024 for x in xs], color="tab:green",
                      linestyle="--",
                      label=f"fit after warm-up: {summary.get('slope_mib_per_min', '?')} MiB/min "
                            f"(bound {summary.get('max_slope_mib_per_min', '?')})")
    rss_axis.axvline(warm_up, color="grey", linestyle=":", label="end of warm-up")
    rss_axis.set_xlabel("seconds")
    rss_axis.set_ylabel("RSS (MiB)")
    rss_axis.set_ylim(bottom=0)
    conn_axis = rss_axis.twinx()
    conn_axis.plot(seconds, connects, color="tab:orange", alpha=0.6, label="client connects (total)")
    conn_axis.set_ylabel("client connects (total)")
    lines = rss_axis.get_legend_handles_labels()
    more = conn_axis.get_legend_handles_labels()
    rss_axis.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize=8)
    clients = summary.get("clients", "?")
    plt.title(f"tinyderp soak: {clients} churning clients, {summary.get('seconds', '?')} s")
    fig.tight_layout()
    fig.savefig(png_path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
