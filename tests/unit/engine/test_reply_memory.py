"""Reply memory: COMPLETED by idempotency key, failures by taskId; bounded, expiring, only for
the same request; this process first, the shared memory behind it."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from consumer.contract.errors import RequestRejected, ServiceError
from consumer.contract.reply import ReplyError
from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import AnswerKeys, RememberedAnswer, ReplyMemory
from consumer.shared_state.redis_client import SharedStateUnavailable
from consumer.stripe.retry import Attempts

DONE = Outcome.completed(msgspec.Raw(b'{"id":"ch_1"}'), "req_1", Attempts(count=1))
TRANSIENT = Outcome.failed(ServiceError(ReplyError(type="api_error", message="x", retryable=True)))
REJECTED = Outcome.failed(RequestRejected("$.x", "bad"))
TASK_1 = AnswerKeys.of("default", None, "wf:ref:abc", "task-1")


def task(task_id: str | None, key: str = "wf:ref:abc") -> AnswerKeys:
    return AnswerKeys.of("default", None, key, task_id)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SharedFake:
    """The shared memory as a dict; ``down`` makes it raise as Redis would."""

    def __init__(self) -> None:
        self.entries: dict[str, RememberedAnswer] = {}
        self.down = False

    async def recall(self, keys: Sequence[str]) -> list[RememberedAnswer | None]:
        if self.down:
            raise SharedStateUnavailable("down")
        return [self.entries.get(key) for key in keys]

    async def remember(self, key: str, answer: RememberedAnswer, ttl_seconds: float) -> None:
        if self.down:
            raise SharedStateUnavailable("down")
        self.entries[key] = answer


async def test_completed_is_remembered_by_key_for_any_task() -> None:
    """A completion answers every copy of the request, whatever its taskId."""
    memory = ReplyMemory(10, 60)
    await memory.remember(TASK_1, "h", DONE)
    assert await memory.recall(TASK_1, "h") == DONE
    assert await memory.recall(task("task-2"), "h") == DONE
    assert await memory.recall(task(None), "h") == DONE


async def test_failures_are_remembered_by_task_only() -> None:
    """FAILED and FAILED_WITH_TERMINAL_ERROR answer copies of that task, not a retry (new
    taskId) nor another request of the task."""
    memory = ReplyMemory(10, 60)
    for outcome in (TRANSIENT, REJECTED):
        keys = task(f"task-{outcome.status}")
        await memory.remember(keys, "h", outcome)
        assert await memory.recall(keys, "h") == outcome
        assert await memory.recall(task("a-retry"), "h") is None
        assert await memory.recall(task(f"task-{outcome.status}", "other-key"), "h") is None


async def test_a_failure_without_a_task_is_not_remembered() -> None:
    """No taskId and no record key: nothing names the task, so nothing is remembered."""
    memory = ReplyMemory(10, 60)
    await memory.remember(task(None), "h", TRANSIENT)
    assert len(memory) == 0


async def test_the_tasks_failure_answers_before_a_completion_of_its_request() -> None:
    """A copy of a failed task stays failed even after a retry of it completed."""
    memory = ReplyMemory(10, 60)
    await memory.remember(TASK_1, "h", TRANSIENT)
    await memory.remember(task("task-1-retry"), "h", DONE)
    assert await memory.recall(TASK_1, "h") == TRANSIENT
    assert await memory.recall(task("task-1-retry"), "h") == DONE


async def test_other_request_hash_is_not_answered() -> None:
    """Same key, other parameters: not this memory's answer."""
    memory = ReplyMemory(10, 60)
    await memory.remember(TASK_1, "h1", DONE)
    assert await memory.recall(TASK_1, "h2") is None


async def test_entries_expire() -> None:
    """Entries older than the TTL are gone."""
    clock = Clock()
    memory = ReplyMemory(10, 60, clock=clock)
    await memory.remember(TASK_1, "h", DONE)
    clock.now = 59.9
    assert await memory.recall(TASK_1, "h") == DONE
    clock.now = 60.0
    assert await memory.recall(TASK_1, "h") is None
    assert len(memory) == 0


async def test_least_recently_used_entries_go_first() -> None:
    """The memory stays within its bound, keeping what was used recently."""
    memory = ReplyMemory(2, 60)
    a, b, c = (task(None, key) for key in "abc")
    await memory.remember(a, "h", DONE)
    await memory.remember(b, "h", DONE)
    assert await memory.recall(a, "h") == DONE
    await memory.remember(c, "h", DONE)
    assert len(memory) == 2
    assert await memory.recall(b, "h") is None
    assert await memory.recall(a, "h") == DONE


async def test_the_shared_memory_answers_what_this_process_never_saw() -> None:
    """Another replica's (or an earlier process's) answers come from the shared memory."""
    shared = SharedFake()
    await ReplyMemory(10, 60, shared=shared).remember(TASK_1, "h", TRANSIENT)
    fresh = ReplyMemory(10, 60, shared=shared)
    assert await fresh.recall(TASK_1, "h") == TRANSIENT
    assert len(fresh) == 1  # kept in this process for the next copy


async def test_without_the_shared_memory_this_process_still_answers() -> None:
    """Redis down past the patience: remembering and recalling carry on in this process,
    without raising."""
    shared = SharedFake()
    shared.down = True
    memory = ReplyMemory(10, 60, shared=shared, patience_seconds=0)
    await memory.remember(TASK_1, "h", DONE)
    assert await memory.recall(TASK_1, "h") == DONE
    assert await memory.recall(task("t", "unknown"), "h") is None


def test_remembered_outcome_is_marked_deduplicated() -> None:
    """An answer from memory says so and made no attempt."""
    again = DONE.remembered()
    assert (again.deduplicated, again.attempts, again.output) == (True, 0, DONE.output)
