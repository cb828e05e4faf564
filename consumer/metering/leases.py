"""A batch's claims kept alive while the batch is out (sent, then settled).

A claim is a lease: if its owner dies, it expires and another replica sends the identifier.
A live owner's send may take longer than the lease (a loaded machine, a slow Stripe, a claim
spread over dozens of cluster slots), and then the lease must not run out under it: another
replica would claim the identifier and send it a second time. So while a batch is out its
claims are renewed every third of the lease (a full lease again, each only while it is still
this owner's), and a claim older than a third of the lease is renewed before the batch is
sent: a claim lost by then (another sender's now) is never sent from here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Final

from consumer.metering.ledgers.protocol import IdentifierLedger, LedgerScope
from consumer.observability.logs import get_logger

_RETRY_PAUSE: Final = 0.1  # a failed renewal is tried again this soon (the lease runs on)
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
    ) -> None:
        self._ledger = ledger
        self._scope = scope
        self._held = list(identifiers)
        self._interval = lease_seconds / 3
        self._renewed_at = claimed_at
        self._settling = False
        self._task: asyncio.Task[None] | None = None

    async def keep(self) -> set[str]:
        """Start renewing; first renew now if a third of the lease has passed since the
        claim. Answers the identifiers no longer held (never to be sent from here); raises
        when the ledger could not say (then none may be sent)."""
        lost: set[str] = set()
        if asyncio.get_running_loop().time() - self._renewed_at >= self._interval:
            lost = await self._renew()
        self._task = asyncio.create_task(self._renewing())
        return lost

    def settling(self) -> None:
        """The batch is being settled (marked delivered or released): its claims go away on
        purpose, so a renewal that no longer finds them is not a lost lease."""
        self._settling = True

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renewing(self) -> None:
        loop = asyncio.get_running_loop()
        while self._held:
            await asyncio.sleep(max(0.0, self._renewed_at + self._interval - loop.time()))
            try:
                lost = await self._renew()
            except Exception:  # the lease runs on: try again soon (two more thirds to go)
                await asyncio.sleep(_RETRY_PAUSE)
                continue
            if lost and not self._settling:
                _log.warning(
                    "meter event claims ran out while their batch was being sent; another "
                    "sender may send these identifiers too",
                    extra={"identifiers": len(lost), "lease_seconds": self._interval * 3},
                )

    async def _renew(self) -> set[str]:
        started = asyncio.get_running_loop().time()
        held = await self._ledger.renew(self._scope, self._held)
        lost = {identifier for identifier, ok in zip(self._held, held, strict=True) if not ok}
        self._held = [identifier for identifier in self._held if identifier not in lost]
        self._renewed_at = started
        return lost
