"""(d): the service's peak resident memory while it works through a 100,000-record backlog
on six partitions, and its RSS at 10, 50 and 100 % of the run."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from bench.harness import Harness
from bench.table import Row, at_most


async def peak_rss_in_a_backlog(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=0)
    count = h.n(100_000)
    topics = await h.topics("d", 6)
    await h.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"d-{i}" for i in range(count)])
    service = h.service(topics, "d-service", LOG_LEVEL="WARNING").start()
    samples: list[int] = []

    def rss_kib() -> int:
        status = Path(f"/proc/{service.pid}/status").read_text()
        vm_rss = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(vm_rss.split()[1])

    async def sample() -> None:
        while True:
            with contextlib.suppress(OSError, StopIteration):
                samples.append(await asyncio.to_thread(rss_kib))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    try:
        await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 900)
        peak = service.peak_rss_kib()
    finally:
        sampler.cancel()
        service.terminate()
    along = [samples[min(len(samples) - 1, int(len(samples) * f))] for f in (0.1, 0.5, 0.999)]
    return {
        "backlog_records": count,
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_mib_at_10_50_100_pct_of_run": [round(kib / 1024, 1) for kib in along],
    }


def rows(r: dict[str, Any]) -> list[Row]:
    peak = r.get("peak_rss_mib")
    return [
        Row("d", f"peak RSS MiB, {r.get('backlog_records')}-record backlog", peak, "< 250",
            at_most(peak, 250)),
    ]  # fmt: skip
