"""Liveness and readiness: what ``/healthz`` and ``/readyz`` answer, and why.

Alive while the consumer loop fetches (it fetches at least every 0.2 s); ready once it is a
member of the consumer group, a broker answers, and Stripe accepts every integration's key.
The probe reads the running parts through the small protocols below, so this module needs
none of them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final, Protocol

# The consumer loop fetches at least every 0.2 s; silence this long means it is stuck.
LIVENESS_WINDOW_SECONDS: Final = 60.0


class ConsumerLoop(Protocol):
    @property
    def last_fetch_monotonic(self) -> float: ...

    @property
    def group_joined(self) -> asyncio.Event: ...


class Broker(Protocol):
    @property
    def reachable(self) -> bool: ...


class Credentials(Protocol):
    def rejected(self) -> set[str]: ...


class Outputs(Protocol):
    def denied_topics(self) -> set[str]: ...


class Probe(Protocol):
    def alive(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


class StartingProbe:
    """What the endpoints answer from the first moment: during start-up (bounded by its own
    deadline, so alive) not ready, with what it waits for; then what ``running`` answers."""

    def __init__(self) -> None:
        self.waiting_for = "starting"
        self.running: Probe | None = None

    def alive(self) -> tuple[bool, str]:
        if self.running is not None:
            return self.running.alive()
        return True, f"starting: {self.waiting_for}"

    def ready(self) -> tuple[bool, str]:
        if self.running is not None:
            return self.running.ready()
        return False, f"starting: {self.waiting_for}"


@dataclass(slots=True)
class HealthProbe:
    loop: ConsumerLoop
    credentials: Credentials
    broker: Broker
    outputs: Outputs | None = None

    def alive(self) -> tuple[bool, str]:
        silent = time.monotonic() - self.loop.last_fetch_monotonic
        if silent > LIVENESS_WINDOW_SECONDS:
            return False, f"no Kafka fetch for {silent:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        alive, why = self.alive()
        if not alive:
            return False, why
        if not self.loop.group_joined.is_set():
            return False, "not yet a member of the consumer group"
        if not self.broker.reachable:
            return False, "no Kafka broker answers"
        denied = self.outputs.denied_topics() if self.outputs is not None else set()
        if denied:
            return False, f"Kafka denies Write on topic(s): {', '.join(sorted(denied))} (ACL)"
        rejected = self.credentials.rejected()
        if rejected:
            return False, f"Stripe rejects the key of: {', '.join(sorted(rejected))}"
        return True, "ok"
