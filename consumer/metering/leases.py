"""A batch's claims kept alive while the batch is out (sent, then settled).

A claim is a lease: if its owner dies, it expires and another replica sends the identifier.
A live owner's send may take longer than the lease (a loaded machine, a slow Stripe, a claim
spread over dozens of cluster slots), and then the lease must not run out under it: another
replica would claim the identifier and send it a second time. So while a batch is out its
claims are renewed every third of the lease (a full lease again, each only while it is still
this owner's), and a claim older than a third of the lease is renewed before the batch is
sent: a claim lost by then (another sender's now) is never sent from here.

A renewal round takes time too (on a Redis Cluster 100 claims took 0.36-0.69 s on a loaded
machine), so the lease must stay well above three rounds: CONSUMER_METER_CLAIM_SECONDS is at
least 5 s. A lost claim is counted (``on_lost(reason, count)``: ``another_owner`` when
another replica holds it now, ``expired`` when it ran out and nobody took it yet) and the
batch logs one warning when it is done, whatever it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from consumer.metering.ledgers.protocol import IdentifierLedger, LedgerScope, Renewal
from consumer.observability.logs import get_logger

_RETRY_PAUSE: Final = 0.1  # a failed renewal is tried again this soon (the lease runs on)
REASONS: Final = {Renewal.TAKEN: "another_owner", Renewal.GONE: "expired"}
_log = get_logger()


class HeldClaims:
    """Renews a batch's claims every ``lease_seconds / 3`` from :meth:`keep` to :meth:`stop`.

    ``claimed_at`` is the event loop's time when the claim call was sent: no lease of the
    batch started before it."""

    def __init__(
        self,
        ledger: IdentifierLedger,
        scope: LedgerScope,
        identifiers: Sequence[str],
        *,
        lease_seconds: float,
        claimed_at: float,
        on_lost: Callable[[str, int], None] = lambda reason, count: None,
    ) -> None:
        self._ledger = ledger
        self._scope = scope
        self._held = list(identifiers)
        self._lease = lease_seconds
        self._interval = lease_seconds / 3
        self._renewed_at = claimed_at
        self._settling = False
        self._on_lost = on_lost
        self._lost_before: Counter[str] = Counter()  # reason -> claims (never sent from here)
        self._lost_while_out: Counter[str] = Counter()  # reason -> claims (sent, or being sent)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def keep(self) -> set[str]:
        """Start renewing; first renew now if a third of the lease has passed since the
        claim. Answers the identifiers no longer held (never to be sent from here); raises
        when the ledger could not say (then none may be sent)."""
        lost: set[str] = set()
        if asyncio.get_running_loop().time() - self._renewed_at >= self._interval:
            lost = self._count(await self._renew(), self._lost_before)
        self._task = asyncio.create_task(self._renewing())
        return lost

    def settling(self) -> None:
        """The batch is being settled (marked delivered or released): its claims go away on
        purpose, so a renewal that no longer finds them is not a lost lease (one another
        owner holds still is)."""
        self._settling = True

    async def stop(self) -> None:
        """Stop renewing (the renewer also stops on its own at its next turn, should the
        cancel be swallowed by a Redis call's timeout), then log what the batch lost."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._log_losses()

    async def _renewing(self) -> None:
        loop = asyncio.get_running_loop()
        while self._held and not self._stopping.is_set():
            delay = max(0.0, self._renewed_at + self._interval - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            try:
                renewed = await self._renew()
            except Exception:  # the lease runs on: try again soon (two more thirds to go)
                await asyncio.sleep(_RETRY_PAUSE)
                continue
            if self._settling:  # settled claims are gone on purpose
                renewed = {i: r for i, r in renewed.items() if r is Renewal.TAKEN}
            self._count(renewed, self._lost_while_out)

    async def _renew(self) -> dict[str, Renewal]:
        """Renew what is held; answers the identifiers no longer held, and why."""
        started = asyncio.get_running_loop().time()
        answers = await self._ledger.renew(self._scope, self._held)
        lost: dict[str, Renewal] = {
            identifier: answer
            for identifier, answer in zip(self._held, answers, strict=True)
            if answer is not Renewal.HELD
        }
        self._held = [identifier for identifier in self._held if identifier not in lost]
        self._renewed_at = started
        return lost

    def _count(self, lost: dict[str, Renewal], into: Counter[str]) -> set[str]:
        reasons = Counter(REASONS[answer] for answer in lost.values())
        for reason, count in reasons.items():
            self._on_lost(reason, count)
        into.update(reasons)
        return set(lost)

    def _log_losses(self) -> None:
        before, out = self._lost_before, self._lost_while_out
        if not before and not out:
            return
        _log.warning(
            "meter event claims ran out under their batch (the lease is too short for this "
            "load or Redis is slow); those lost before the send were not sent from here, "
            "those lost while out may be sent by another sender too",
            extra={
                "lost_before_send": dict(before),
                "lost_while_out": dict(out),
                "lease_seconds": self._lease,
            },
        )
        self._lost_before, self._lost_while_out = Counter(), Counter()
