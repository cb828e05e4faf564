"""register's wait: it returns once Conductor lists every handler's event among the queues it
listens to, and fails naming the missing ones when it never does."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.conductor.client import ConductorClient, ConductorError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeConductor(ConductorClient):
    """GET /admin/queues answers from a script: each call the next set of events."""

    def __init__(self, answers: list[dict[str, str]]) -> None:
        super().__init__("http://conductor.invalid")
        self.answers = answers
        self.calls = 0

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        assert (method, path) == ("GET", "/admin/queues")
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return answer


def test_returns_once_every_event_is_listened_to() -> None:
    """Polls until both events appear (the third answer); returns the seconds it waited."""
    clock = Clock()
    conductor = FakeConductor([{}, {"kafka:a": "a"}, {"kafka:a": "a", "kafka:b": "b"}])
    waited = conductor.wait_listening({"kafka:a", "kafka:b"}, 90, clock=clock, sleep=clock.sleep)
    assert waited == 2.0
    assert conductor.calls == 3


def test_fails_naming_the_events_still_missing() -> None:
    """After the timeout: a ConductorError that names what Conductor does not listen to."""
    clock = Clock()
    conductor = FakeConductor([{"kafka:a": "a"}])
    with pytest.raises(ConductorError, match=r"does not listen to kafka:b after 5 s"):
        conductor.wait_listening({"kafka:a", "kafka:b"}, 5, clock=clock, sleep=clock.sleep)
