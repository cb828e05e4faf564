"""Batching meter events, each identifier sent once.

``submit(event, on_result)`` calls ``on_result`` with the event's result (directly, from the
batch's task: no future and no scheduled callback per event); ``deliver(event)`` awaits it.
Events gather per Stripe account and go out when a batch
is full (100, the stream's limit) or has lingered ``linger`` seconds; several batches are in
flight at once. For each batch:

1. claim the identifiers in the ledger: already ``DELIVERED`` ones resolve as deduplicated at
   once; ones another sender holds (``PENDING``) wait and are claimed again shortly;
2. send the claimed events; on success mark them delivered, then answer the events. While
   the batch is out its claims are renewed every third of the lease (``leases.HeldClaims``),
   so a slow send never lets another replica claim and send them too; a claim found lost
   before the send (someone else's now) is not sent from here but asked about again;
3. a transient failure (rate limit, 5xx, connection, expired session) releases the claims and
   retries the same events (same identifiers) after a backoff, for as long as it takes:
   usage is never dropped because Stripe is briefly unavailable. An unexpected exception
   (a bug) is retried so :data:`UNEXPECTED_ATTEMPTS` times at most (logged, counted), then
   answered failed for good as in step 4 (the same identifiers each time: Stripe
   deduplicates an identifier it has for 24 hours);
4. a terminal failure releases the claims and answers the events as failed (the caller
   answers: reply or DLQ), so one bad batch never blocks the partition;
5. Stripe rejects the integration's key (the credential gate is closed): the claims are
   released and the events answered ``held`` at once; the pipeline holds them outside the
   batcher, so they take no sending slot that other integrations need.

Duplicates within this process (the same identifier queued twice) share one send. An event is
never sent without its claim: if the ledger is unreachable, the batch waits and retries.

An event is *started* from the moment its batch takes a sending slot (claim, send, mark) until
it is answered or goes back to wait for a retry. ``withdraw`` takes back events not started
whose owner (the pipeline passes the record) is no longer wanted, after a rebalance or at
shutdown: they are never sent from here, and the partition's new owner sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.leases import HeldClaims
from consumer.metering.ledgers.protocol import ClaimState, IdentifierLedger, LedgerScope
from consumer.metering.transports import MeterTransport
from consumer.metering.usage import UsageBook
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.stripe.credential_gate import CredentialHeld

MAX_BATCH: Final = 100
# Sends ending in an unexpected exception before the event is answered failed: about 6 s
# of backoff, to outlast a blip seen as an unclassified error (a bug does not heal later).
UNEXPECTED_ATTEMPTS: Final = 6
_UNEXPECTED: Final = StripeFailure(
    ReplyError(type="api_error", message="The batch could not be sent", retryable=True),
    category="api_error",
)
_GAVE_UP: Final = StripeFailure(
    ReplyError(
        type="api_error",
        message=f"The meter event could not be sent: an internal error, {UNEXPECTED_ATTEMPTS} "
        "times (see the service's log); not counted, send it again once fixed",
        retryable=False,
    ),
    category="api_error",
)
_HELD: Final = MeterResult("held")
_COUNTED: Final = frozenset({"delivered", "deduplicated"})  # Stripe has it
_log = get_logger()


class _Entry(msgspec.Struct):
    event: MeterEvent
    answer: list[Callable[[MeterResult], None]] = msgspec.field(default_factory=list)
    owners: list[object] = msgspec.field(default_factory=list)  # one per answer
    failures: int = 0
    unexpected: int = 0  # sends that ended in an unexpected exception
    sending: bool = False  # its batch holds a sending slot: started, not withdrawable


class MeterEventBatcher:
    def __init__(
        self,
        transport: MeterTransport,
        ledger: IdentifierLedger,
        metrics: ServiceMetrics,
        *,
        batch_size: int = MAX_BATCH,
        linger_seconds: float = 0.025,
        concurrency: int = 8,
        pending_recheck_seconds: float = 0.25,
        max_backoff_seconds: float = 10.0,
        lease_seconds: float = 60.0,
        usage: UsageBook | None = None,
    ) -> None:
        self._lease = lease_seconds  # the ledger's claim lease: renewed while a batch is out
        self._usage = usage  # what was delivered, summed for reconciliation
        self._transport = transport
        self._ledger = ledger
        self._metrics = metrics
        self._batch_size = min(batch_size, MAX_BATCH)
        self._linger = linger_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._recheck = pending_recheck_seconds
        self._max_backoff = max_backoff_seconds
        self._queues: dict[LedgerScope, list[_Entry]] = defaultdict(list)
        self._known: dict[tuple[LedgerScope, str], _Entry] = {}  # queued or in flight here
        self._timers: dict[LedgerScope, asyncio.TimerHandle] = {}
        self._later: dict[asyncio.TimerHandle, _Entry] = {}  # entries waiting to be re-queued
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._ledger_failing = False  # said once per outage, not once per waiting batch

    def submit(
        self, event: MeterEvent, on_result: Callable[[MeterResult], None], owner: object = None
    ) -> None:
        known = self._known.get((event.scope, event.identifier))
        if known is not None:  # a duplicate of one already queued or in flight here
            known.answer.append(on_result)
            known.owners.append(owner)
            return
        entry = _Entry(event, [on_result], [owner])
        self._known[(event.scope, event.identifier)] = entry
        self._enqueue(entry)

    def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]:
        """Take back the events not started whose owner is ``unwanted``: they are neither
        sent nor answered from here. Returns the withdrawn events' owners."""
        withdrawn: list[object] = []
        for known, entry in list(self._known.items()):
            if entry.sending or not any(unwanted(owner) for owner in entry.owners):
                continue
            answers = list(zip(entry.answer, entry.owners, strict=True))
            withdrawn.extend(owner for _, owner in answers if unwanted(owner))
            kept = [(answer, owner) for answer, owner in answers if not unwanted(owner)]
            entry.answer = [answer for answer, _ in kept]
            entry.owners = [owner for _, owner in kept]
            if not kept:  # nobody waits for it: dropped where it waits (queue, retry timer)
                del self._known[known]
        return withdrawn

    async def deliver(self, event: MeterEvent) -> MeterResult:
        """Submit and wait for the result."""
        future: asyncio.Future[MeterResult] = asyncio.get_running_loop().create_future()
        self.submit(event, future.set_result)
        return await future

    def _enqueue(self, entry: _Entry) -> None:
        scope = entry.event.scope
        queue = self._queues[scope]
        queue.append(entry)
        if len(queue) >= self._batch_size or self._closing:
            self._flush(scope)
        elif scope not in self._timers:
            self._timers[scope] = asyncio.get_running_loop().call_later(
                self._linger, self._flush, scope
            )

    def _flush(self, scope: LedgerScope) -> None:
        timer = self._timers.pop(scope, None)
        if timer is not None:
            timer.cancel()
        queue = self._queues.pop(scope, [])  # an account gone quiet leaves nothing behind
        for start in range(0, len(queue), self._batch_size):
            task = asyncio.create_task(self._send(scope, queue[start : start + self._batch_size]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def accounts_queued(self) -> int:
        """Stripe accounts with events queued or a linger timer set here."""
        return len(self._queues.keys() | self._timers.keys())

    def flush_all(self) -> None:
        """Send everything queued now (rebalance, shutdown)."""
        for scope in list(self._queues):
            self._flush(scope)

    async def close(self, timeout_s: float) -> bool:
        """Flush and wait for every batch; False if some were still out at the timeout."""
        self._closing = True
        for handle, entry in list(self._later.items()):
            handle.cancel()
            self._enqueue(entry)  # no more waiting: out it goes
        self._later.clear()
        self.flush_all()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    def _later_enqueue(self, entry: _Entry, delay: float) -> None:
        entry.sending = False  # waiting again: withdrawable
        handle: asyncio.TimerHandle

        def requeue() -> None:
            del self._later[handle]
            self._enqueue(entry)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._later[handle] = entry

    # -- one batch --------------------------------------------------------------------------

    async def _send(self, scope: LedgerScope, batch: list[_Entry]) -> None:
        async with self._slots:
            batch = [entry for entry in batch if entry.answer]  # withdrawn ones stay behind
            if not batch:
                return
            for entry in batch:
                entry.sending = True
            claimed_at = asyncio.get_running_loop().time()  # no lease starts before this
            try:
                states = await self._ledger.claim(scope, [e.event.identifier for e in batch])
            except Exception as exc:  # the ledger is unreachable: never send unclaimed
                if not self._ledger_failing:
                    self._ledger_failing = True
                    _log.warning(
                        "identifier ledger unavailable; meter events wait for it (never sent "
                        "unclaimed)",
                        extra={"error": repr(exc)},
                    )
                self._retry_later(batch)
                return
            if self._ledger_failing:
                self._ledger_failing = False
                _log.warning("identifier ledger answers again; waiting meter events go out")
            claimed = []
            for entry, state in zip(batch, states, strict=True):
                if state is ClaimState.CLAIMED:
                    claimed.append(entry)
                elif state is ClaimState.DELIVERED:
                    self._metrics.deduplicated.labels("meter_identifier").inc()
                    self._resolve(entry, MeterResult("deduplicated"))
                else:
                    self._later_enqueue(entry, self._recheck)
            if claimed:
                await self._deliver(scope, claimed, claimed_at)

    async def _deliver(self, scope: LedgerScope, claimed: list[_Entry], claimed_at: float) -> None:
        """Send the claimed entries, their claims renewed until they are settled."""
        ids = [entry.event.identifier for entry in claimed]
        held = HeldClaims(
            self._ledger,
            scope,
            ids,
            lease_seconds=self._lease,
            claimed_at=claimed_at,
            on_lost=lambda reason, count: self._metrics.meter_claims_lost.labels(reason).inc(count),
        )
        try:
            lost = await held.keep()
        except Exception:  # not known whether the claims are still ours: send none of them
            self._retry_later(claimed)
            return
        try:
            for entry in claimed:
                if entry.event.identifier in lost:  # another sender's now: ask again shortly
                    self._later_enqueue(entry, self._recheck)
            kept = [entry for entry in claimed if entry.event.identifier not in lost]
            if kept:
                await self._send_claimed(scope, kept, held)
        finally:
            await held.stop()

    async def _send_claimed(
        self, scope: LedgerScope, claimed: list[_Entry], held: HeldClaims
    ) -> None:
        credential = claimed[0].event.credential
        try:
            results = await self._transport.send(scope, credential, [e.event for e in claimed])
        except CredentialHeld:
            results = [_HELD] * len(claimed)
        except StripeFailure as failure:
            results = [MeterResult("failed", failure=failure)] * len(claimed)
        except Exception:  # a bug, not Stripe's answer: retry a few times, then fail them
            results = self._unexpected(claimed)
        accepted = [e for e, r in zip(claimed, results, strict=True) if r.status in _COUNTED]
        refused = [
            (e, r) for e, r in zip(claimed, results, strict=True) if r.status not in _COUNTED
        ]
        held.settling()
        if accepted:
            await self._mark_delivered(scope, [e.event.identifier for e in accepted])
            delivered = Counter(r.api for r in results if r.status == "delivered")
            for api, count in delivered.items():
                self._metrics.meter_events.labels(api or self._transport.name).inc(count)
        if refused:
            with contextlib.suppress(Exception):  # an unreleased claim only expires later
                await self._ledger.release(scope, [e.event.identifier for e, _ in refused])
        await held.stop()  # settled: nothing of this batch is held any more
        for entry, result in zip(claimed, results, strict=True):
            if result.status == "deduplicated":
                self._metrics.deduplicated.labels("stripe_identifier").inc()
            if result.status in _COUNTED:
                self._resolve(entry, result)
        transient = [
            e
            for e, r in refused
            if r.status == "failed" and r.failure is not None and r.failure.retryable
        ]
        for entry, result in refused:
            if entry not in transient:
                self._resolve(entry, result)
        if transient:
            self._retry_later(transient)
        # After the answers: the sums for reconciliation never delay a reply or a commit.
        sent = [e.event for e, r in zip(claimed, results, strict=True) if r.status == "delivered"]
        await self._sum_delivered(scope, sent)

    def _unexpected(self, claimed: list[_Entry]) -> list[MeterResult]:
        """A send raised something that is not Stripe's answer (logged with its traceback):
        retried while under :data:`UNEXPECTED_ATTEMPTS`, answered failed for good after."""
        for entry in claimed:
            entry.unexpected += 1
        given_up = [entry.unexpected >= UNEXPECTED_ATTEMPTS for entry in claimed]
        gave_up = sum(given_up)
        _log.exception(
            "sending a meter event batch failed unexpectedly; "
            + ("answering its events failed" if gave_up else "retrying it"),
            extra={"events": len(claimed), "failed_for_good": gave_up},
        )
        self._metrics.meter_send_errors.labels("failed").inc(gave_up)
        self._metrics.meter_send_errors.labels("retried").inc(len(claimed) - gave_up)
        return [
            MeterResult("failed", failure=_GAVE_UP if last else _UNEXPECTED) for last in given_up
        ]

    async def _sum_delivered(self, scope: LedgerScope, events: list[MeterEvent]) -> None:
        """Add to the reconciliation sums, waiting out a short Redis blip; a longer failure
        is logged (the events are delivered: `reconcile` shows the gap as drift)."""
        if self._usage is None or not events:
            return
        for delay in (0.1, 0.5, 2.0, 5.0, None):  # a Redis blip is waited out, briefly
            try:
                await self._usage.delivered(scope, events)
            except Exception as exc:
                if delay is None or self._closing:
                    _log.warning("could not add delivered usage", extra={"error": repr(exc)})
                    return
                await asyncio.sleep(delay)
            else:
                return

    async def _mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        """Stripe has them: record that, retrying while the ledger is unreachable (an entry
        left pending would only expire, and a redelivery would then send it again)."""
        delay = 0.1
        while True:
            try:
                await self._ledger.mark_delivered(scope, identifiers)
            except Exception as exc:
                if self._closing:
                    _log.warning("could not mark identifiers delivered", extra={"error": repr(exc)})
                    return
                await asyncio.sleep(delay)
                delay = min(self._max_backoff, delay * 2)
            else:
                return

    def _retry_later(self, entries: Sequence[_Entry]) -> None:
        """Send these again after one backoff (with jitter), together, as they failed."""
        failures = max(entry.failures for entry in entries) + 1
        for entry in entries:
            entry.failures = failures
        ceiling = min(self._max_backoff, 0.1 * 2 ** min(failures, 10))
        delay = ceiling * (0.5 + random.random() / 2)  # noqa: S311  (jitter, not security)
        for entry in entries:
            self._later_enqueue(entry, delay)

    def _resolve(self, entry: _Entry, result: MeterResult) -> None:
        self._known.pop((entry.event.scope, entry.event.identifier), None)
        first, *duplicates = entry.answer
        _answer(first, result)
        for duplicate in duplicates:
            if result.status not in _COUNTED:
                _answer(duplicate, result)
            else:
                self._metrics.deduplicated.labels("meter_identifier").inc()
                _answer(duplicate, MeterResult("deduplicated", request_id=result.request_id))


def _answer(on_result: Callable[[MeterResult], None], result: MeterResult) -> None:
    """Hand a result over; a caller's failure must not stop the rest of the batch."""
    try:
        on_result(result)
    except Exception:
        _log.exception("answering a meter event failed")
