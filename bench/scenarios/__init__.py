"""The scenarios of ``make bench``, one module per figure, each an async function of the
harness that returns its results. They import bench.harness (their only door to Kafka,
the stack, Conductor and the stand-in), msgspec and the standard library (and (w) the
shipped Conductor event handlers); never each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import Harness

from .conductor_steps import conductor_step_latency
from .latency import latency_outside_stripe
from .memory import peak_rss_in_a_backlog
from .metering import meter_events_through_the_stream
from .rate_limit import calls_per_second_under_a_limit
from .replicas import replicas_against_one
from .throughput import service_vs_aiokafka_ceiling, service_vs_naive_consumer

Scenario = Callable[[Harness], Awaitable[dict[str, Any]]]

# By the letter `--scenarios` takes, in the order `make bench` runs them.
SCENARIOS: dict[str, Scenario] = {
    "a": service_vs_naive_consumer,
    "b": service_vs_aiokafka_ceiling,
    "c": latency_outside_stripe,
    "d": peak_rss_in_a_backlog,
    "e": calls_per_second_under_a_limit,
    "m": meter_events_through_the_stream,
    "r": replicas_against_one,
    "w": conductor_step_latency,
}
