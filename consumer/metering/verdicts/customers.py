"""Known customers (``CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS``, 0 = off): a meter event whose
customer Stripe says does not exist is refused before sending, naming ``$.customer_id``.

Each customer id is looked up once with ``GET /v1/customers/{id}`` (404 ``resource_missing``,
or a deleted customer, is "missing"); the answer is kept in Redis for the replicas to share
(found: the setting's seconds; missing: :data:`MISSING_SECONDS`, so a customer created
just after is not refused for long) and in a bounded in-process cache in front. Concurrent
events for one new id wait for one lookup. Stripe failing (an outage, a timeout, a 429)
never refuses usage: the event is sent, and the id is not looked up again for
:data:`FAIL_OPEN_SECONDS`. Redis failing: the lookup goes to Stripe. Only the integration's
own account is checked: events naming ``stripe_account`` are sent unchecked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec

from consumer.contract.errors import RequestRejected, StripeFailure
from consumer.contract.requests import CreateMeterEvent
from consumer.observability.logs import get_logger
from consumer.shared_state.redis_client import RedisConnection, SharedStateUnavailable

MISSING_SECONDS: Final = 60.0
FAIL_OPEN_SECONDS: Final = 30.0
LOOKUP_TIMEOUT_SECONDS: Final = 10.0
MAX_LOCAL_ENTRIES: Final = 100_000
# Lookups in flight at once: a burst of new ids (a cold start) must not take every call of
# the Stripe rate limit they share with the operations (the reader counts them in it; a
# wait for the limiter is inside the lookup's timeout: a saturated limit sends unchecked).
LOOKUPS_AT_ONCE: Final = 8
_USE: Final = "known_customers"
_FOUND, _MISSING = b"1", b"0"
_log = get_logger()

# (integration, path) -> the body of Stripe's answer; raises StripeFailure on an error.
Lookup = Callable[[str, str], Awaitable[bytes]]


class _Customer(msgspec.Struct):
    deleted: bool = False


class KnownCustomers:
    def __init__(
        self,
        lookup: Lookup,
        redis: RedisConnection | None,
        *,
        found_seconds: float,
        max_local: int = MAX_LOCAL_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        counted: Callable[[str], None] = lambda result: None,
    ) -> None:
        self._lookup = lookup
        self._redis = redis
        self._found_seconds = found_seconds
        self._max_local = max_local
        self._clock = clock
        self._counted = counted  # each lookup's result: found, missing, failed
        self._local: OrderedDict[tuple[str, str], tuple[bool, float]] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._lookups_at_once = asyncio.Semaphore(LOOKUPS_AT_ONCE)
        self.stripe_lookups = 0  # GETs sent (the bench and the tests read it)

    def known_locally(self, request: CreateMeterEvent) -> bool:
        """True when the event may go on without waiting: not checked (a connected
        account's), or its customer known to exist in this process."""
        if isinstance(request.stripe_account, str):
            return True
        return self._local_answer((request.credential_name, request.customer_id)) is True

    async def check(self, request: CreateMeterEvent) -> None:
        """RequestRejected naming ``$.customer_id`` when Stripe says there is no such customer."""
        if isinstance(request.stripe_account, str):
            return
        key = (request.credential_name, request.customer_id)
        exists = self._local_answer(key)
        if exists is None:
            exists = await self._shared_lookup(key)
        if not exists:
            raise RequestRejected(
                "$.customer_id",
                f"No such customer: {request.customer_id!r} (Stripe would not count the event: "
                "meter_event_customer_not_found)",
            )

    def _local_answer(self, key: tuple[str, str]) -> bool | None:
        entry = self._local.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._local[key]
            return None
        self._local.move_to_end(key)
        return entry[0]

    def _remember_locally(self, key: tuple[str, str], exists: bool, seconds: float) -> None:
        self._local[key] = (exists, self._clock() + seconds)
        self._local.move_to_end(key)
        while len(self._local) > self._max_local:
            self._local.popitem(last=False)

    async def _shared_lookup(self, key: tuple[str, str]) -> bool:
        """One lookup per id at a time in this process; the others wait for its answer."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            exists = await self._look_up(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when none waits
            raise
        finally:
            del self._pending[key]
        future.set_result(exists)
        return exists

    async def _look_up(self, key: tuple[str, str]) -> bool:
        redis_key = self._redis_key(key)
        remembered = await self._redis_get(redis_key)
        if remembered is not None:
            exists = remembered == _FOUND
            self._remember_locally(key, exists, self._seconds(exists))
            return exists
        exists_or_none = await self._ask_stripe(key)
        if exists_or_none is None:  # fail open: send, and do not ask again for a while
            self._remember_locally(key, True, FAIL_OPEN_SECONDS)
            return True
        exists = exists_or_none
        self._remember_locally(key, exists, self._seconds(exists))
        await self._redis_put(redis_key, exists)
        return exists

    def _seconds(self, exists: bool) -> float:
        return self._found_seconds if exists else min(MISSING_SECONDS, self._found_seconds)

    async def _ask_stripe(self, key: tuple[str, str]) -> bool | None:
        """True: it exists; False: Stripe says there is none; None: no answer (fail open)."""
        exists = await self._ask_stripe_once(key)
        self._counted("failed" if exists is None else "found" if exists else "missing")
        return exists

    async def _ask_stripe_once(self, key: tuple[str, str]) -> bool | None:
        integration, customer_id = key
        try:
            async with self._lookups_at_once:  # waiting for a turn is not the timeout's
                self.stripe_lookups += 1
                async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                    body = await self._lookup(integration, f"/v1/customers/{customer_id}")
        except StripeFailure as failure:
            if failure.detail.http_status == 404 and failure.detail.code == "resource_missing":
                return False
            _log.warning(
                "looking up a customer failed; sending its meter events unchecked",
                extra={"error": failure.detail.reason, "integration": integration},
            )
            return None
        except TimeoutError:
            _log.warning(
                "looking up a customer timed out; sending its meter events unchecked",
                extra={"integration": integration},
            )
            return None
        try:
            return not msgspec.json.decode(body, type=_Customer).deleted
        except msgspec.DecodeError:
            return None

    def _redis_key(self, key: tuple[str, str]) -> str | None:
        if self._redis is None:
            return None
        return f"{self._redis.prefix}known-customer:{key[0]}:{key[1]}"

    async def _redis_get(self, redis_key: str | None) -> bytes | None:
        if self._redis is None or redis_key is None:
            return None
        try:
            [value] = await self._redis.get_many([redis_key], use=_USE)
        except SharedStateUnavailable:
            return None  # ask Stripe instead
        return value

    async def _redis_put(self, redis_key: str | None, exists: bool) -> None:
        if self._redis is None or redis_key is None:
            return
        value = _FOUND if exists else _MISSING
        # Redis down: this replica remembers it; the others look it up themselves.
        with contextlib.suppress(SharedStateUnavailable):
            await self._redis.put(redis_key, value, ttl_seconds=self._seconds(exists), use=_USE)
