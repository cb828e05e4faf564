"""What the service already answered, so a copy of a request gets the same answer without a
Stripe call (the contract's "Idempotency and deduplication"):

- **COMPLETED, by idempotency key** (within its integration and connected account): Conductor
  republishes a pending EVENT task's record on every decide, Kafka redelivers after a crash,
  and a Conductor retry of a task whose reply was lost carries the same key: all are answered
  with the first result.
- **FAILED and FAILED_WITH_TERMINAL_ERROR, by taskId** (and the same idempotency key): a copy
  of a task already answered as failed is answered the same way, never run; the workflow has
  taken its failure branch, and a charge now would be one it believes did not happen. A
  Conductor *retry* carries a new taskId and runs (Stripe replays or executes it under the
  same idempotency key). The taskId is the request's ``taskId``, else its record key (what
  the reply names as taskId).

An entry remembers the request's hash too, so a caller that reuses its own
``idempotency_key`` for different parameters is not answered with another request's result.

Two tiers: this process's memory (bounded, least recently used first, expiring) answers
first; when Redis is configured the shared memory behind it answers for every replica and
across restarts. Both keep an answer for the same window.

An answer is in the shared memory before its reply is sent (a completion as Stripe's answer
arrives, a failure in the delivery just before Kafka), and a copy asks the shared memory
before it runs. Neither gives up on one failed call: through a blip (a slow command, a
reset connection, Redis restarting) the call is retried for up to ``patience_seconds``.
Giving up at once was the hole: a replica killed after sending a COMPLETED it could not write
left no trace, and the copy Kafka redelivered to another replica ran again; Stripe replays
an idempotency key, but in a storm of 5xx/429 the replay outlived the retry budget and the
copy was answered FAILED after COMPLETED (``test_kills_in_a_storm``). Only an outage longer
than the patience narrows the memory to this process (every call then falls back at once
until Redis answers): a copy then reaches Stripe with the same idempotency key, which
replays the first result within Stripe's 24 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol, TypeVar

import msgspec

from consumer.contract.reply import ReplyError, ReplyStatus
from consumer.engine.replies import Outcome
from consumer.metering.scopes import Expiring
from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection, SharedStateUnavailable

# How long a call to the shared memory is retried through a blip before this process's memory
# answers alone; Redis is probed every 2 s and found unreachable within about 4 s, and a
# reply waits this long at most (twice: the copy's question and the answer's write).
SHARED_PATIENCE_SECONDS: Final = 5.0
_RETRY_DELAYS: Final = (0.05, 0.1, 0.2, 0.4, 0.8)  # then every 0.8 s
T = TypeVar("T")


class RememberedAnswer(msgspec.Struct, frozen=True):
    outcome: Outcome
    request_hash: str


class AnswerKeys(msgspec.Struct, frozen=True):
    """Where a request's answers are remembered."""

    completed: str
    failed: str | None  # None: no taskId (nor record key) to remember a failure by

    def in_order(self) -> list[str]:
        """A failure of this task answers before a completion of the same request."""
        return [self.failed, self.completed] if self.failed is not None else [self.completed]

    @classmethod
    def of(
        cls, integration: str, stripe_account: str | None, idempotency_key: str, task_id: str | None
    ) -> AnswerKeys:
        scoped = f"{integration}:{stripe_account or '-'}:{idempotency_key}"
        return cls(
            completed=f"completed:{scoped}",
            failed=f"failed:{task_id}:{scoped}" if task_id else None,
        )


class MemorySlot(msgspec.Struct, frozen=True):
    """Where one request's answers are remembered, and the hash a remembered answer must
    match (a caller reusing its ``idempotency_key`` for other parameters is not answered)."""

    keys: AnswerKeys
    request_hash: str


class SharedAnswers(Protocol):
    """The memory replicas share (Redis); SharedStateUnavailable when it cannot answer."""

    async def recall(self, keys: Sequence[str]) -> list[RememberedAnswer | None]: ...

    async def remember(self, key: str, answer: RememberedAnswer, ttl_seconds: float) -> None: ...


class ReplyMemory:
    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        *,
        shared: SharedAnswers | None = None,
        clock: Callable[[], float] = time.monotonic,
        patience_seconds: float = SHARED_PATIENCE_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # This process's memory: bounded (least recently used entries go first), expiring.
        self._local: Expiring[str, RememberedAnswer] = Expiring(max_entries, clock)
        self._clock = clock
        self._shared = shared
        self._ttl = ttl_seconds
        self._patience = patience_seconds
        self._sleep = sleep
        self._shared_failing_since: float | None = None  # every shared call failed since

    def __len__(self) -> int:
        return len(self._local)

    async def recall(self, keys: AnswerKeys, request_hash: str) -> Outcome | None:
        """A remembered failure of this task, else a remembered completion of this request."""
        answers = {key: self._local.get(key) for key in keys.in_order()}
        missing = [key for key, answer in answers.items() if answer is None]
        if missing and self._shared is not None:
            shared = self._shared
            try:
                fetched = await self._patiently(lambda: shared.recall(missing))
            except SharedStateUnavailable:  # an outage: Stripe's own idempotency covers
                fetched = []  # what this process does not remember
            for key, answer in zip(missing, fetched, strict=False):
                if answer is not None:
                    answers[key] = answer
                    self._remember_here(key, answer)
        for answer in answers.values():
            if answer is not None and answer.request_hash == request_hash:
                return answer.outcome
        return None

    async def remember_failure(self, slot: MemorySlot, outcome: Outcome) -> None:
        """A FAILED / FAILED_WITH_TERMINAL_ERROR answer about to be sent: remembered by taskId,
        so a copy of the task is answered the same. The pipeline's delivery calls this for
        every failure reply, whichever path built it (one place, so no path can forget)."""
        if outcome.status != "COMPLETED" and not outcome.deduplicated:
            await self.remember(slot.keys, slot.request_hash, outcome)

    async def remember(self, keys: AnswerKeys, request_hash: str, outcome: Outcome) -> None:
        """COMPLETED by idempotency key; a failure by taskId; nothing else. Returns once the
        shared memory holds it (or an outage outlived the patience)."""
        key = keys.completed if outcome.status == "COMPLETED" else keys.failed
        if key is None or self._ttl <= 0:
            return
        answer = RememberedAnswer(outcome, request_hash)
        self._remember_here(key, answer)
        if self._shared is not None:
            shared, ttl = self._shared, self._ttl
            with contextlib.suppress(SharedStateUnavailable):  # an outage: this process only
                await self._patiently(lambda: shared.remember(key, answer, ttl))

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """The shared memory's answer, retried through a blip for up to the patience;
        SharedStateUnavailable once it has failed every call for longer (an outage: then
        at once, until a call succeeds)."""
        attempt = 0
        first_failure: float | None = None
        while True:
            try:
                result = await call()
            except SharedStateUnavailable:
                now = self._clock()
                if self._shared_failing_since is None:
                    self._shared_failing_since = now
                if first_failure is None:
                    first_failure = now
                if now >= min(first_failure, self._shared_failing_since) + self._patience:
                    raise
                await self._sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
                attempt += 1
            else:
                self._shared_failing_since = None
                return result

    def _remember_here(self, key: str, answer: RememberedAnswer) -> None:
        self._local.put(key, answer, self._clock() + self._ttl)


# -- in Redis: ``<prefix>reply:<completed|failed>:…`` holds the answer as JSON (a COMPLETED one
# holds the Stripe object, about 3 KiB; a failure about 0.5 KiB); a value that cannot be read
# (written by another version) counts as not remembered.


class _StoredAnswer(msgspec.Struct, frozen=True):
    """An answer as JSON in Redis (``output`` kept raw: the Stripe object as Stripe sent it)."""

    request_hash: str
    status: ReplyStatus
    output: msgspec.Raw  # JSON null when there is none
    error: ReplyError | None
    stripe_request_id: str | None
    attempts: int

    @classmethod
    def of(cls, answer: RememberedAnswer) -> _StoredAnswer:
        outcome = answer.outcome
        return cls(
            answer.request_hash,
            outcome.status,
            outcome.output if outcome.output is not None else msgspec.Raw(b"null"),
            outcome.error,
            outcome.stripe_request_id,
            outcome.attempts,
        )

    def answer(self) -> RememberedAnswer:
        output = None if bytes(self.output) == b"null" else self.output
        outcome = Outcome(
            self.status,
            output=output,
            error=self.error,
            stripe_request_id=self.stripe_request_id,
            attempts=self.attempts,
        )
        return RememberedAnswer(outcome, self.request_hash)


_decode_answer = msgspec.json.Decoder(_StoredAnswer)
_encode = msgspec.json.Encoder()


class RedisAnswers:
    _USE: Final = "reply_memory"

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._prefix = f"{connection.prefix}reply:"

    async def recall(self, keys: Sequence[str]) -> list[RememberedAnswer | None]:
        values = await self._redis.get_many([self._prefix + key for key in keys], use=self._USE)
        return [_readable(value) for value in values]

    async def remember(self, key: str, answer: RememberedAnswer, ttl_seconds: float) -> None:
        value = _encode.encode(_StoredAnswer.of(answer))
        await self._redis.put(self._prefix + key, value, ttl_seconds=ttl_seconds, use=self._USE)


def _readable(value: bytes | None) -> RememberedAnswer | None:
    if value is None:
        return None
    try:
        return _decode_answer.decode(value).answer()
    except msgspec.DecodeError:
        return None


def reply_memory(settings: Settings, redis: RedisConnection | None) -> ReplyMemory:
    return ReplyMemory(
        settings.reply_memory_entries,
        settings.reply_memory_seconds,
        shared=RedisAnswers(redis) if redis is not None else None,
    )
