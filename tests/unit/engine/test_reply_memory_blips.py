"""The reply memory through a Redis blip: one failed call to the shared memory is retried,
not taken as "nothing remembered", so a copy on another replica (after a SIGKILL) is answered
as the first answer was, even while Stripe fails every call (test_kills_in_a_storm's hole)."""

from __future__ import annotations

from collections.abc import Sequence

from consumer.engine.reply_memory import AnswerKeys, RememberedAnswer, ReplyMemory
from consumer.shared_state.redis_client import SharedStateUnavailable
from tests.unit.engine.test_processor import CHARGE, Harness, reply_of
from tests.unit.engine.test_reply_memory import DONE, TASK_1, Clock
from tests.unit.fakes import FakeStripe, failure


class FlakyShared:
    """The shared memory as a dict: the next ``read_blips`` reads and ``write_blips`` writes
    fail as Redis would (one slow command, a reset connection); ``down`` fails every call
    (an outage)."""

    def __init__(self) -> None:
        self.entries: dict[str, RememberedAnswer] = {}
        self.read_blips = 0
        self.write_blips = 0
        self.down = False

    async def recall(self, keys: Sequence[str]) -> list[RememberedAnswer | None]:
        if self.down or self.read_blips > 0:
            self.read_blips = max(0, self.read_blips - 1)
            raise SharedStateUnavailable("Redis did not answer (TimeoutError)")
        return [self.entries.get(key) for key in keys]

    async def remember(self, key: str, answer: RememberedAnswer, ttl_seconds: float) -> None:
        if self.down or self.write_blips > 0:
            self.write_blips = max(0, self.write_blips - 1)
            raise SharedStateUnavailable("Redis did not answer (TimeoutError)")
        self.entries[key] = answer


class Sleeps:
    """asyncio.sleep on a fake clock: each sleep moves the clock on."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        self.clock.now += seconds


def memory_on(shared: FlakyShared, clock: Clock | None = None) -> tuple[ReplyMemory, Sleeps]:
    clock = clock or Clock()
    sleeps = Sleeps(clock)
    return ReplyMemory(100, 3600, shared=shared, clock=clock, sleep=sleeps), sleeps


async def test_an_answer_written_through_a_blip_reaches_the_shared_memory() -> None:
    """Two failed writes, then Redis answers: the answer is in the shared memory (it used to
    stay in this process alone, and die with it)."""
    shared = FlakyShared()
    shared.write_blips = 2
    memory, sleeps = memory_on(shared)
    await memory.remember(TASK_1, "h", DONE)
    assert shared.entries == {TASK_1.completed: RememberedAnswer(DONE, "h")}
    assert len(sleeps.taken) == 2


async def test_a_question_asked_through_a_blip_finds_another_replicas_answer() -> None:
    """Two failed reads, then Redis answers: the answer another replica wrote is found (it
    used to be taken as "never answered")."""
    shared = FlakyShared()
    shared.entries[TASK_1.completed] = RememberedAnswer(DONE, "h")
    shared.read_blips = 2
    memory, _ = memory_on(shared)
    assert await memory.recall(TASK_1, "h") == DONE


async def test_an_outage_longer_than_the_patience_falls_back_then_fails_fast() -> None:
    """Redis down: the first call gives up after the patience (this process's memory
    answers); later calls fall back at once, without waiting; one success ends that."""
    shared = FlakyShared()
    shared.down = True
    clock = Clock()
    memory, sleeps = memory_on(shared, clock)
    await memory.remember(TASK_1, "h", DONE)
    assert clock.now >= 5.0  # waited the patience (SHARED_PATIENCE_SECONDS) once
    waited = len(sleeps.taken)
    assert await memory.recall(AnswerKeys.of("default", None, "other", "t"), "h") is None
    assert await memory.recall(TASK_1, "h") == DONE  # this process's memory
    assert len(sleeps.taken) == waited  # no more waiting: an outage
    shared.down = False
    await memory.remember(AnswerKeys.of("default", None, "k2", "t2"), "h", DONE)
    shared.write_blips = 1
    await memory.remember(AnswerKeys.of("default", None, "k3", "t3"), "h", DONE)
    assert len(shared.entries) == 2  # after a success, a blip is ridden out again
    assert len(sleeps.taken) == waited + 1


async def test_a_copy_on_another_replica_after_a_write_blip_is_answered_completed() -> None:
    """Replica A completes a charge while one write to Redis fails, sends COMPLETED and is
    killed; its copy reaches replica B while Stripe fails every call: B answers COMPLETED from
    the shared memory, without a Stripe call (it answered FAILED after COMPLETED before)."""
    shared = FlakyShared()
    first = Harness(memory=ReplyMemory(1000, 3600, shared=shared))
    shared.write_blips = 1
    assert reply_of(await first.process(CHARGE))["status"] == "COMPLETED"
    storm = FakeStripe(failures=[failure("api_error", retryable=True, message="503")] * 1000)
    second = Harness(stripe=storm, memory=ReplyMemory(1000, 3600, shared=shared))
    copy = reply_of(await second.process(CHARGE))
    assert (copy["status"], copy["deduplicated"]) == ("COMPLETED", True)
    assert storm.calls == []


async def test_a_copy_on_another_replica_during_a_read_blip_is_answered_completed() -> None:
    """Replica A's COMPLETED is in Redis; replica B's first question to Redis fails (a slow
    command) while Stripe fails every call: B answers COMPLETED from the shared memory."""
    shared = FlakyShared()
    first = Harness(memory=ReplyMemory(1000, 3600, shared=shared))
    assert reply_of(await first.process(CHARGE))["status"] == "COMPLETED"
    storm = FakeStripe(failures=[failure("api_error", retryable=True, message="503")] * 1000)
    second = Harness(stripe=storm, memory=ReplyMemory(1000, 3600, shared=shared))
    shared.read_blips = 1
    copy = reply_of(await second.process(CHARGE))
    assert (copy["status"], copy["deduplicated"]) == ("COMPLETED", True)
    assert storm.calls == []


async def test_a_copy_of_a_failed_task_after_a_write_blip_is_answered_failed_not_run() -> None:
    """Replica A answers FAILED (its retry budget outlived) while one write to Redis fails;
    the copy on replica B, where Stripe now answers, is answered FAILED, never run."""
    shared = FlakyShared()
    storm = FakeStripe(failures=[failure("api_error", retryable=True, message="503")] * 1000)
    first = Harness(stripe=storm, memory=ReplyMemory(1000, 3600, shared=shared))
    shared.write_blips = 1  # the failure's write, in the delivery just before Kafka
    assert reply_of(await first.process(CHARGE))["status"] == "FAILED"
    second = Harness(memory=ReplyMemory(1000, 3600, shared=shared))
    copy = reply_of(await second.process(CHARGE))
    assert (copy["status"], copy["deduplicated"]) == ("FAILED", True)
    assert second.stripe.calls == []
