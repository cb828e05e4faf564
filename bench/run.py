"""`make bench`: throughput, latency and memory of the service on this machine, against a
real Kafka broker and the project's Stripe stand-in (in its own process).

Scenarios (issues 4 and 17), one module each in bench/scenarios/:
  cpu  stand-in answers at once: the service's CPU time per request (user+sys / answered)
  a  stand-in answers after 100 ms, one partition: the service at in-flight limits 256-2048
     vs a naive consumer
  b  stand-in answers at once: the service vs aiokafka alone consuming and producing (ceiling)
  c  offered 1,500 and 500 ops/s: p50/p99 of time spent in the service outside Stripe
  d  peak RSS while working through a 100,000-record backlog
  e  STRIPE_RATE_LIMIT=50: the most calls the stand-in saw in any one second, and 429s
  m  meter events through the v2 stream (Redis ledger): events/s of the service beside
     aiokafka alone reading and decoding the same topic; deliveries per identifier

Prints one table (each row with its target, the machine and its load) and writes it as JSON
to bench/results/latest.json, then draws the charts (bench/charts.py) beside it. Set
STACK_ENV_FILE to a running stack's env file to reuse it; otherwise a private stack is
started and stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import charts
from bench.harness import Harness
from bench.report import report
from bench.scenarios import SCENARIOS
from tests.support.stack import ROOT, StandIn, local_stack

RESULTS = ROOT / "bench" / "results" / "latest.json"


@contextlib.contextmanager
def environment() -> Iterator[tuple[dict[str, str], StandIn, Path]]:
    """The stack (a private one unless STACK_ENV_FILE names a running one) and the
    stand-in, with a fresh directory for this run's logs."""
    work = ROOT / ".local" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    print(f"bench: logs in {work.relative_to(ROOT)}", flush=True)
    with local_stack(work / "stack") as stack:
        standin = StandIn(work / "standin.log")
        try:
            yield stack, standin, work
        finally:
            standin.close()


def scenario_names(text: str) -> list[str]:
    """``cpu,a,b`` (names, comma-separated), or ``abc`` (one-letter names run together)."""
    if text in SCENARIOS or "," in text:
        return [name.strip() for name in text.split(",") if name.strip()]
    return list(text)


async def main_async(scenarios: list[str], scale: float) -> dict[str, Any]:
    with environment() as (stack, standin, work):
        harness = Harness(stack, standin, work, scale)
        for name in scenarios:
            print(f"bench: scenario {name} ...", flush=True)
            started = time.perf_counter()
            load_before = round(os.getloadavg()[0], 2)  # a shared machine: say how busy it was
            harness.results[name] = await SCENARIOS[name].run(harness)
            harness.results[name]["load_avg_1m_before"] = load_before
            took = time.perf_counter() - started
            print(
                f"bench: scenario {name} done in {took:.0f}s: {harness.results[name]}", flush=True
            )
        return harness.results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, in this order by default: {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply record counts (quick runs: 0.1)"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    names = scenario_names(args.scenarios)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {','.join(unknown)}; choose from {','.join(SCENARIOS)}")
    results = asyncio.run(main_async(names, args.scale))
    written = report(results, args.scale, " ".join(["python -m bench.run", *sys.argv[1:]]))
    print()
    print(written["table"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(written, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    for chart in charts.draw(written, Path(args.out).parent):
        print(f"drawn {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
