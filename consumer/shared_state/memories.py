"""The memories replicas share, in Redis: answers already given (``engine/reply_memory.py``)
and deletes already sent (``engine/deletes.py``).

Plain keys with Redis's own expiry: ``<prefix>reply:<completed|failed>:…`` holding the answer
as JSON (a COMPLETED one holds the Stripe object, about 3 KiB; a failure about 0.5 KiB), and
``<prefix>delete:<integration>:<account>:<idempotency key>`` holding ``sent``. A value that
cannot be read (written by another version) counts as not remembered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from consumer.contract.reply import ReplyError, ReplyStatus
from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import RememberedAnswer
from consumer.shared_state.redis_client import RedisConnection


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


class RedisDeleteRecords:
    _USE: Final = "delete_record"

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._prefix = f"{connection.prefix}delete:"

    async def mark_sent(self, key: str, ttl_seconds: float) -> bool:
        """Record it (for the window from now); True when it was recorded before."""
        previous = await self._redis.swap(
            self._prefix + key, b"sent", ttl_seconds=ttl_seconds, use=self._USE
        )
        return previous is not None

    async def forget(self, key: str) -> None:
        await self._redis.delete(self._prefix + key, use=self._USE)
