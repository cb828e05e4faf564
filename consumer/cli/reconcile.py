"""``python -m consumer reconcile --since 6h``: what the service delivered against what Stripe
counted, per meter, customer and hour (``consumer/metering/reconcile.py``), as a table; a
progress bar on stderr; exit 1 when any row drifts beyond the tolerance, 2 when it cannot
run (no Redis: the sums live there, shared by the replicas)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from prometheus_client import CollectorRegistry

from consumer.app import redactor_for
from consumer.cli.durations import parse_duration
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.reconcile import Progress, Reconciler, Row, drift_by_meter
from consumer.metering.usage import RedisUsageBook
from consumer.metering.verdicts.intake import StripeReader
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.shared_state.redis_client import redis_connection
from consumer.stripe.gateway import open_gateway
from consumer.stripe.shared_rate_limit import rate_limiters


def parse_since(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:
        raise ValueError(f"--since: expected a duration like 90m, 6h or 2d, got {text!r}")
    return seconds


def progress_bar(out: TextIO) -> Progress:
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        out.write(f"\rreconciling [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            out.write("\n")
        out.flush()

    return show


async def reconcile_command(
    settings: Settings, since: str, tolerance: float, integration: str, out: TextIO = sys.stdout
) -> int:
    try:
        seconds = parse_since(since)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    metrics = ServiceMetrics(CollectorRegistry())
    redis = redis_connection(settings, metrics)
    if redis is None:
        print("reconcile needs CONSUMER_REDIS_URL: the delivered sums live there", file=sys.stderr)
        return 2
    if integration not in settings.credentials:
        print(f"unknown integration {integration!r}", file=sys.stderr)
        return 2
    try:
        async with open_gateway(settings, redactor_for(settings)) as gateway:
            reconciler = Reconciler(
                # within the group's Stripe rate limit (shared through Redis)
                StripeReader(gateway, settings, rate_limiters(settings, redis, "reconcile")),
                RedisUsageBook(redis),
                LedgerScope(integration, None),
            )
            rows = await reconciler.rows(seconds, progress=progress_bar(sys.stderr))
    finally:
        await redis.close()
    print_table(rows, out)
    beyond = [r for r in rows if abs(r.drift) > tolerance]
    print(f"\nrows: {len(rows)}; beyond the tolerance ({tolerance:g}): {len(beyond)}", file=out)
    return 1 if beyond else 0


def print_table(rows: list[Row], out: TextIO) -> None:
    header = (
        "meter",
        "event_name",
        "customer",
        "hour (UTC)",
        "delivered",
        "counted",
        "rejected",
        "drift",
    )
    lines = [header]
    for row in rows:
        rejected = ", ".join(
            f"{code}={value:g} ({row.rejected_events.get(code, 0)})"
            for code, value in sorted(row.rejected.items())
        )
        lines.append(
            (
                row.meter_id or "-",
                row.event_name,
                row.customer,
                time.strftime("%Y-%m-%d %H:00", time.gmtime(row.hour)),
                f"{row.delivered:g}",
                f"{row.counted:g}",
                rejected or "-",
                f"{row.drift:g}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)), file=out
        )
    per_code: dict[str, int] = {}
    for row in rows:
        for code, count in row.rejected_events.items():
            per_code[code] = per_code.get(code, 0) + count
    print(
        "\nrejected events by code: "
        + (", ".join(f"{c}={n}" for c, n in sorted(per_code.items())) or "none"),
        file=out,
    )
    drift = drift_by_meter(rows)
    print(
        "drift by meter: " + (", ".join(f"{m}={d:g}" for m, d in sorted(drift.items())) or "none"),
        file=out,
    )
