"""The scenarios of ``make bench``, one module per figure: an async function of the harness
that returns its results, and ``rows(result)`` for the table (bench/table.py). They import
bench.harness (their only door to Kafka, the stack, Conductor and the stand-in), bench.table,
msgspec and the standard library (and (w) the shipped Conductor event handlers); never each
other. A new figure is a new module and one entry
below."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from bench.harness import Harness
from bench.table import Row

from . import conductor_steps, cpu, latency, memory, metering, rate_limit, replicas, throughput


class Scenario(NamedTuple):
    run: Callable[[Harness], Awaitable[dict[str, Any]]]
    rows: Callable[[dict[str, Any]], list[Row]]


# By the name `--scenarios` takes, in the order `make bench` runs them.
SCENARIOS: dict[str, Scenario] = {
    "cpu": Scenario(cpu.cpu_per_request, cpu.rows),
    "a": Scenario(throughput.service_vs_naive_consumer, throughput.a_rows),
    "b": Scenario(throughput.service_vs_aiokafka_ceiling, throughput.b_rows),
    "c": Scenario(latency.latency_outside_stripe, latency.rows),
    "d": Scenario(memory.peak_rss_in_a_backlog, memory.rows),
    "e": Scenario(rate_limit.calls_per_second_under_a_limit, rate_limit.rows),
    "m": Scenario(metering.meter_events_through_the_stream, metering.rows),
    "r": Scenario(replicas.replicas_against_one, replicas.rows),
    "w": Scenario(conductor_steps.conductor_step_latency, conductor_steps.rows),
}
