"""The report ``make bench`` prints and writes to bench/results/latest.json: the results
by scenario, the machine they were measured on, and one table with the targets (each
scenario's own rows, in the order they ran)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from bench.scenarios import SCENARIOS
from bench.table import Row, render


def report(results: dict[str, Any], scale: float, command: str) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
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
    rows: list[Row] = []
    for name, result in results.items():
        if name in SCENARIOS:
            rows += SCENARIOS[name].rows(result)
    about = machine()
    heading = (
        f"measured on {about['cpu']}, {about['cores']} cores, Python {about['python']}; "
        "load average (1 min) before each scenario: "
        + ", ".join(f"{name} {r.get('load_avg_1m_before')}" for name, r in results.items())
    )
    return heading + "\n" + render(rows)
