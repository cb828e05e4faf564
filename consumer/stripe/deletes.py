"""Deletes sent to Stripe, so a delete redelivered after a crash reports what happened.

DELETE carries no idempotency key at Stripe. A delete that reached Stripe but whose reply
never left (a crash, a lost connection) is sent again, and Stripe answers 404
``resource_missing``: the object is gone *because* of the first send. The contract: when the
service's memory shows it already sent that delete, the 404 is ``COMPLETED`` with
``{"id", "object", "deleted": true}``; a 404 for a delete never sent before is still a failure
(a mistyped id must not pass).

:class:`RecordedDeletes` wraps the Stripe caller. Before each DELETE attempt it records the
delete as sent (by the request's idempotency key, within its integration and account) and
learns whether it was recorded before:

- 404 ``resource_missing``, recorded before: the earlier send deleted it; answered deleted;
- 404, not recorded before: nothing of ours deleted it; the record goes, the 404 stands;
- another 4xx (a 429, a 401): Stripe refused it without executing; a record this attempt
  made goes;
- success, 5xx, timeouts, lost connections: the record stays (Stripe may have deleted it).

Records live in this process (bounded) and, with Redis, for every replica and across
restarts, for :data:`DELETE_RECORD_SECONDS`. When Redis fails a delete is not held up: this
process's record is used, and a redelivery landing elsewhere then answers the 404 as a failure,
never with a second delete.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Protocol

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.shared_state.redis_client import RedisConnection, SharedStateUnavailable
from consumer.stripe.calls import StripeCall, StripeResponse
from consumer.stripe.executor import StripeCaller

# A redelivery comes minutes after the crash, or when the service is back after an outage:
# a week covers that, and a record is a few bytes.
DELETE_RECORD_SECONDS: Final = 7 * 86_400.0
_DELETED_OBJECT: Final = {"customers": "customer"}  # path segment -> Stripe's object name
_log = get_logger()


class SharedDeleteRecords(Protocol):
    """Delete records replicas share (Redis); SharedStateUnavailable when it cannot answer."""

    async def mark_sent(self, key: str, ttl_seconds: float) -> bool: ...

    async def forget(self, key: str) -> None: ...


class DeleteRecords:
    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        ttl_seconds: float = DELETE_RECORD_SECONDS,
        shared: SharedDeleteRecords | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._shared = shared
        self._clock = clock
        self._sent: OrderedDict[str, float] = OrderedDict()  # key -> expiry

    async def mark_sent(self, key: str) -> bool:
        """Record the delete as sent; True when it was recorded as sent before."""
        now = self._clock()
        expiry = self._sent.pop(key, None)
        before = expiry is not None and expiry > now
        self._sent[key] = now + self._ttl
        while len(self._sent) > self._max_entries:
            self._sent.popitem(last=False)
        if self._shared is not None:
            with contextlib.suppress(SharedStateUnavailable):  # this process's record stands
                before = await self._shared.mark_sent(key, self._ttl) or before
        return before

    async def forget(self, key: str) -> None:
        self._sent.pop(key, None)
        if self._shared is not None:
            with contextlib.suppress(SharedStateUnavailable):  # it expires by itself
                await self._shared.forget(key)


class RecordedDeletes:
    """A Stripe caller that records deletes before sending them (see the module docstring)."""

    def __init__(
        self, caller: StripeCaller, records: DeleteRecords, metrics: ServiceMetrics
    ) -> None:
        self._caller = caller
        self._records = records
        self._metrics = metrics

    async def call(
        self,
        call: StripeCall,
        *,
        credential: StripeCredential,
        stripe_account: str | None,
        idempotency_key: str | None,
    ) -> StripeResponse:
        send = self._caller.call
        if call.http_method != "DELETE" or idempotency_key is None:
            return await send(
                call,
                credential=credential,
                stripe_account=stripe_account,
                idempotency_key=idempotency_key,
            )
        key = f"{credential.integration}:{stripe_account or '-'}:{idempotency_key}"
        sent_before = await self._records.mark_sent(key)
        try:
            return await send(
                call,
                credential=credential,
                stripe_account=stripe_account,
                idempotency_key=idempotency_key,
            )
        except StripeFailure as failure:
            status = failure.detail.http_status or 0
            if sent_before and status == 404 and failure.detail.code == "resource_missing":
                self._metrics.deduplicated.labels("delete_record").inc()
                _log.info(
                    "the object of a delete sent before is gone; answering it deleted",
                    extra={"path": call.path, "idempotency_key": idempotency_key},
                )
                return _deleted(call, failure.detail.request_id)
            if not sent_before and 400 <= status < 500:
                await self._records.forget(key)  # Stripe refused it: nothing was deleted
            raise


def _deleted(call: StripeCall, request_id: str | None) -> StripeResponse:
    """What Stripe answers a successful delete: ``{"id", "object", "deleted": true}``."""
    collection, _, object_id = call.path.removeprefix("/v1/").rpartition("/")
    name = _DELETED_OBJECT.get(collection, collection.removesuffix("s"))
    body = {"id": object_id, "object": name, "deleted": True}
    return StripeResponse(msgspec.Raw(msgspec.json.encode(body)), request_id, 200)


class RedisDeleteRecords:
    """Delete records in Redis: ``<prefix>delete:<integration>:<account>:<idempotency key>``
    holding ``sent``, with Redis's own expiry."""

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


def delete_records(redis: RedisConnection | None) -> DeleteRecords:
    return DeleteRecords(shared=RedisDeleteRecords(redis) if redis is not None else None)
