"""The charts ``make bench`` draws from its results (bench/results/latest.json), as PNGs in
bench/results/ that the README shows:

  c-latency.png    (c) the distribution of the time a request spends in the service outside
                   Stripe, one curve per offered rate
  a-in-flight.png  (a) replies per second against the in-flight limit, with the limit's own
                   ceiling (limit / Stripe's latency)
  r-replicas.png   (r) throughput of N replicas against N, beside N x one replica, from
                   ``results["r"]["by_replicas"]``: a list of {"replicas": N, "ops_per_s": x}
                   (the scale scenario writes it)

    .venv/bin/python -m bench.charts [results.json]

Each chart is drawn only when its results are there. matplotlib is a bench-only dependency.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _subtitle(report: dict[str, Any]) -> str:
    machine = report.get("machine", {})
    return (
        f"{report.get('when', '')}, {machine.get('cpu', '?')} x {machine.get('cores', '?')} "
        f"cores, scale {report.get('scale', '?')}"
    )


def _finish(fig: Any, ax: Any, report: dict[str, Any], out: Path) -> bool:
    """What every chart ends with: the machine line, legend, grid, the PNG written."""
    fig.text(0.01, 0.01, _subtitle(report), fontsize=7, color="grey")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def latency_chart(report: dict[str, Any], out: Path) -> bool:
    points = report["results"].get("c", {}).get("by_rate", [])
    points = [p for p in points if p.get("percentiles_1_to_99_ms")]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for point in points:
        values = point["percentiles_1_to_99_ms"]
        ax.plot(values, range(1, len(values) + 1), label=f"{point['offered_ops_per_s']:g} ops/s")
    ax.axvline(10, color="grey", linestyle="--", linewidth=1, label="target p99 < 10 ms")
    ax.axhline(99, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("time in the service outside Stripe, ms (log)")
    ax.set_ylabel("percentile of requests")
    ax.set_title("(c) service time per request, Stripe answering after 100 ms")
    fig.text(0.01, 0.01, _subtitle(report), fontsize=7, color="grey")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def in_flight_chart(report: dict[str, Any], out: Path) -> bool:
    a = report["results"].get("a", {})
    sweep = a.get("by_in_flight", [])
    if not sweep:
        return False
    limits = [p["in_flight"] for p in sweep]
    latency_s = a.get("stripe_latency_ms", 100) / 1000
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(limits, [p["ops_per_s"] for p in sweep], "o-", label="the service, one process")
    ax.plot(limits, [n / latency_s for n in limits], "--", color="grey",
            label="the limit's ceiling (limit / 100 ms)")  # fmt: skip
    ax.axhline(10_000, color="tab:red", linestyle=":", label="target 10,000 ops/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(limits, [str(n) for n in limits])
    ax.set_xlabel("CONSUMER_MAX_IN_FLIGHT (and Stripe connections)")
    ax.set_ylabel("replies per second")
    ax.set_title("(a) throughput against the in-flight limit, Stripe answering after 100 ms")
    return _finish(fig, ax, report, out)


def replicas_chart(report: dict[str, Any], out: Path) -> bool:
    points = sorted(
        report["results"].get("r", {}).get("by_replicas", []), key=lambda p: p["replicas"]
    )
    if not points:
        return False
    replicas = [p["replicas"] for p in points]
    one = next((p["ops_per_s"] for p in points if p["replicas"] == 1), points[0]["ops_per_s"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(replicas, [p["ops_per_s"] for p in points], "o-", label="N replicas, measured")
    ax.plot(replicas, [n * one for n in replicas], "--", color="grey", label="N x one replica")
    ax.plot(replicas, [0.9 * n * one for n in replicas], ":", color="tab:red",
            label="target 0.9 N x one")  # fmt: skip
    ax.set_xlabel("replicas in the group")
    ax.set_ylabel("replies per second")
    ax.set_title("(r) throughput against replicas")
    return _finish(fig, ax, report, out)


CHARTS = {
    "c-latency.png": latency_chart,
    "a-in-flight.png": in_flight_chart,
    "r-replicas.png": replicas_chart,
}


def draw(report: dict[str, Any], directory: Path = RESULTS_DIR) -> list[Path]:
    """Every chart whose results are in the report; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    return [directory / name for name, chart in CHARTS.items() if chart(report, directory / name)]


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR / "latest.json"
    for path in draw(json.loads(source.read_text())):
        print(f"drawn {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
