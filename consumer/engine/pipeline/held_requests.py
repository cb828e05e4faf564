"""Requests held while Stripe rejects their integration's key: outside every worker slot.

The executor sends nothing for an integration whose key Stripe rejects (it raises
:class:`~consumer.stripe.credential_gate.CredentialHeld`). The pipeline
parks such a request here instead of letting it wait in a scheduler slot
(``CONSUMER_MAX_IN_FLIGHT``) or a meter-lane slot, which other integrations need; its offset
stays uncommitted meanwhile (a crash redelivers it). Each pass of the consumer loop settles
what is parked:

- the gate opened (a probe found that the key works): released, in the order held, to run;
- held ``hold_seconds`` (``CONSUMER_CREDENTIAL_HOLD_SECONDS``) since first held: answered
  `FAILED` with `authentication_error` (retryable: Conductor's retry policy may try again once
  the key is fixed), so no offset stays uncommitted past the hold;
- more than ``max_held`` at once (``CONSUMER_MAX_BUFFERED``): the longest held are answered
  the same way early. Memory stays bounded like the buffer, and a long rejection under heavy
  traffic never pauses the partitions that other integrations share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.kafka.records import TopicPartition
from consumer.stripe.credential_gate import CredentialGate

T = TypeVar("T")


@dataclass(slots=True)
class Held(Generic[T]):
    item: T
    integration: str
    partition: TopicPartition
    since: float  # when first held (kept when held again after a release)


class HeldRequests(Generic[T]):
    def __init__(
        self,
        gate: CredentialGate,
        *,
        hold_seconds: float,
        max_held: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gate = gate
        self._hold = hold_seconds
        self._max_held = max_held
        self._clock = clock
        self._held: list[Held[T]] = []  # in the order held

    def __len__(self) -> int:
        return len(self._held)

    def is_rejected(self, integration: str) -> bool:
        return self._gate.is_rejected(integration)

    def park(
        self, item: T, *, integration: str, partition: TopicPartition, since: float | None = None
    ) -> float:
        """Hold ``item``; returns when it was first held (pass it back if it is held again)."""
        first = self._clock() if since is None else since
        self._held.append(Held(item, integration, partition, first))
        return first

    def settle(self) -> tuple[list[Held[T]], list[Held[T]]]:
        """(released: their key works again, expired: held too long or beyond the bound)."""
        if not self._held:
            return [], []
        released = [h for h in self._held if not self._gate.is_rejected(h.integration)]
        waiting = [h for h in self._held if self._gate.is_rejected(h.integration)]
        deadline = self._clock() - self._hold
        expired = [h for h in waiting if h.since <= deadline]
        waiting = [h for h in waiting if h.since > deadline]
        if len(waiting) > self._max_held:
            waiting.sort(key=lambda h: h.since)
            overflow = len(waiting) - self._max_held
            expired += waiting[:overflow]
            waiting = waiting[overflow:]
        if released or expired:
            kept = {id(h) for h in waiting}
            self._held = [h for h in self._held if id(h) in kept]
        return released, expired

    def count(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        if partitions is None:
            return len(self._held)
        chosen = set(partitions)
        return sum(1 for h in self._held if h.partition in chosen)

    def drop(self, partitions: Iterable[TopicPartition]) -> list[Held[T]]:
        """Forget (and return) what is held for partitions this consumer no longer owns: the
        new owner receives those records again, uncommitted."""
        gone = set(partitions)
        dropped = [h for h in self._held if h.partition in gone]
        self._held = [h for h in self._held if h.partition not in gone]
        return dropped

    def failure(self, integration: str) -> StripeFailure:
        """The answer for a request held too long: FAILED, `authentication_error`."""
        rejection = self._gate.rejection(integration)
        said = f" Stripe said: {rejection.message}" if rejection is not None else ""
        return StripeFailure(
            ReplyError(
                type="authentication_error",
                message=f"Stripe rejects the API key of integration {integration!r}; the "
                f"request was held {self._hold:g} s for the key to work again.{said}",
                http_status=401,
                request_id=rejection.request_id if rejection is not None else None,
                retryable=True,
            ),
            category="authentication_error",
        )
