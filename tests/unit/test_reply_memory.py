"""Reply memory: terminal outcomes only, bounded, expiring, and only for the same request."""

from __future__ import annotations

import msgspec

from consumer.engine.reply_memory import ReplyMemory
from consumer.engine.retry import Attempts
from consumer.errors import RequestRejected, ServiceError
from consumer.messages import ReplyError
from consumer.replies import Outcome

DONE = Outcome.completed(msgspec.Raw(b'{"id":"ch_1"}'), "req_1", Attempts(count=1))
KEY = ("default", "", "wf:ref:abc")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remembers_terminal_outcomes() -> None:
    """COMPLETED and FAILED_WITH_TERMINAL_ERROR are remembered."""
    memory = ReplyMemory(10, 60)
    memory.remember(KEY, "h", DONE)
    assert memory.recall(KEY, "h") == DONE
    rejected = Outcome.failed(RequestRejected("$.x", "bad"))
    memory.remember(("default", "", "other"), "h", rejected)
    assert memory.recall(("default", "", "other"), "h") == rejected


def test_does_not_remember_transient_failures() -> None:
    """A FAILED outcome must reach Stripe again on Conductor's retry."""
    memory = ReplyMemory(10, 60)
    memory.remember(
        KEY,
        "h",
        Outcome.failed(ServiceError(ReplyError(type="api_error", message="x", retryable=True))),
    )
    assert memory.recall(KEY, "h") is None


def test_other_request_hash_is_not_answered() -> None:
    """Same key, other parameters: not this memory's answer."""
    memory = ReplyMemory(10, 60)
    memory.remember(KEY, "h1", DONE)
    assert memory.recall(KEY, "h2") is None


def test_entries_expire() -> None:
    """Entries older than the TTL are gone."""
    clock = Clock()
    memory = ReplyMemory(10, 60, clock)
    memory.remember(KEY, "h", DONE)
    clock.now = 59.9
    assert memory.recall(KEY, "h") == DONE
    clock.now = 60.0
    assert memory.recall(KEY, "h") is None
    assert len(memory) == 0


def test_least_recently_used_entries_go_first() -> None:
    """The memory stays within its bound, keeping what was used recently."""
    memory = ReplyMemory(2, 60)
    a, b, c = (("default", "", k) for k in "abc")
    memory.remember(a, "h", DONE)
    memory.remember(b, "h", DONE)
    assert memory.recall(a, "h") == DONE
    memory.remember(c, "h", DONE)
    assert len(memory) == 2
    assert memory.recall(b, "h") is None
    assert memory.recall(a, "h") == DONE


def test_remembered_outcome_is_marked_deduplicated() -> None:
    """An answer from memory says so and made no attempt."""
    again = DONE.remembered()
    assert (again.deduplicated, again.attempts, again.output) == (True, 0, DONE.output)
