"""The report ``make bench`` prints and writes to bench/results/latest.json: the results
by scenario, the machine they were measured on, and one table with the targets."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any


def report(results: dict[str, Any], scale: float) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "make bench",
        "scale": scale,
        "machine": machine(),
        "results": results,
        "table": table(results),
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def table(results: dict[str, Any]) -> str:
    a, b, c, d, e, m = (results.get(k, {}) for k in "abcdem")
    half = c.get("at_target_half", {})
    rows = [
        ("a", "100 ms Stripe, 1 partition: service ops/s", a.get("service_ops_per_s"), "≥ 1000"),
        ("a", "  naive consumer ops/s", a.get("naive_ops_per_s"), ""),
        ("a", "  ratio service / naive", a.get("ratio"), "≥ 100"),
        ("b", "0 ms Stripe: service ops/s", b.get("service_ops_per_s"), ""),
        ("b", "  aiokafka consume+produce ceiling ops/s", b.get("aiokafka_ceiling_ops_per_s"), ""),
        ("b", "  ratio service / ceiling", b.get("ratio"), "≥ 0.5"),
        (
            "c",
            f"in-service time outside Stripe at {c.get('offered_ops_per_s')} ops/s: p50 ms",
            c.get("p50_ms"),
            "",
        ),
        ("c", "  p99 ms", c.get("p99_ms"), "< 10"),
        (
            "c",
            f"  the same at {half.get('offered_ops_per_s')} ops/s (half the target): p50 ms",
            half.get("p50_ms"),
            "",
        ),
        ("c", "    p99 ms", half.get("p99_ms"), "< 10"),
        (
            "d",
            f"peak RSS MiB, {d.get('backlog_records')}-record backlog",
            d.get("peak_rss_mib"),
            "< 250",
        ),
        (
            "e",
            "STRIPE_RATE_LIMIT=50: most calls in any second",
            e.get("max_calls_in_any_second"),
            "≤ 50",
        ),
        ("e", "  429 responses", e.get("responses_429"), "0"),
        (
            "m",
            "meter events/s via the v2 stream (Redis ledger)",
            m.get("service_events_per_s"),
            "≥ 20000",
        ),
        ("m", "  aiokafka alone: read + decode records/s", m.get("aiokafka_read_decode_per_s"), ""),
        ("m", "  identifiers delivered more than once", m.get("delivered_more_than_once"), "0"),
        *replica_rows(results.get("r", {})),
        *conductor_rows(results.get("w", {})),
    ]
    lines = [f"{'':2} {'measure':<58} {'value':>10}  target", "-" * 84]
    lines += [f"{k:2} {name:<58} {value!s:>10}  {target}" for k, name, value, target in rows]
    return "\n".join(lines)


def replica_rows(r: dict[str, Any]) -> list[tuple[str, str, Any, str]]:
    """(r): N replicas against one (bench/scenarios/replicas.py)."""
    rates = r.get("ops_per_s_by_replicas", {})
    return [
        (
            "r",
            f"{r.get('replicas')} replicas / one, 100 ms Stripe, {r.get('cores')} cores",
            r.get("ratio"),
            r.get("target", ""),
        ),
        ("r", "  ops/s by replicas", " / ".join(str(v) for v in rates.values()) or None, ""),
    ]


def conductor_rows(w: dict[str, Any]) -> list[tuple[str, str, Any, str]]:
    """(w): a Conductor workflow's step (bench/scenarios/conductor_steps.py)."""
    step = w.get("per_step_ms", {})
    parts = w.get("per_part_ms", {})
    rows: list[tuple[str, str, Any, str]] = [
        ("w", "Conductor EVENT step, scheduled -> COMPLETED: p50 ms", step.get("p50_ms"), ""),
        ("w", "  p99 ms", step.get("p99_ms"), ""),
    ]
    for key, value in parts.items():
        target = "< 100 (p50)" if key.endswith(".completion") else ""
        rows.append(
            ("w", f"  {key} p50 / p99 ms", f"{value.get('p50_ms')} / {value.get('p99_ms')}", target)
        )
    rows.append(
        ("w", "  first step after registering (s)", w.get("first_step_after_registration_s"), "")
    )
    rows.append(("w", "  register's wait for Conductor (s)", w.get("register_wait_s"), ""))
    return rows
