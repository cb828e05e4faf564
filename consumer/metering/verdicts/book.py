"""The verdict book: each identifier's verdict (`rejected:<code>`, `cancelled`), the error
reports already processed, and the poller's cursor. Kept apart from the identifier ledger
(its own keys), so the ledger's layout can change without it.

Redis keys (all under the service's prefix): ``meter-verdict:<integration>:<account>:<id>``
(expires with the ledger's window), ``meter-report:<event id>`` (``pending:<owner>`` for a
lease while one replica processes it, then ``done`` for 31 days: Stripe lists events for 30),
``meter-report-cursor:<integration>`` (the newest ``created`` processed, RFC 3339).
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol

from consumer.metering.ledgers.protocol import LedgerScope
from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection

REPORT_MEMORY_SECONDS: Final = 31 * 86_400.0
REPORT_LEASE_SECONDS: Final = 120.0
CANCELLED: Final = "cancelled"
REJECTED: Final = "rejected"
_USE: Final = "meter_verdicts"
# 1: claimed now; 0: processed before ('done'); 2: another caller holds it (pending).
_CLAIM_REPORT: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == 'done' then return 0 end
return 2
"""
_RELEASE_REPORT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
_ADVANCE: Final = """
local current = redis.call('GET', KEYS[1])
if (not current) or current < ARGV[1] then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""
_MARK: Final = """
for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1]) end
return #KEYS
"""


class ReportClaim(enum.Enum):
    """What claiming an error report found."""

    TAKEN = "taken"  # this caller processes it now
    DONE = "done"  # processed before, here or by another replica
    BUSY = "busy"  # another caller holds it: processing it, or died (until its lease ends)


_REPORT_CLAIMS: Final = {1: ReportClaim.TAKEN, 0: ReportClaim.DONE}


class VerdictBook(Protocol):
    async def mark(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        """(identifier, verdict): `rejected:<code>` or `cancelled`."""

    async def verdicts(
        self, scope: LedgerScope, identifiers: Sequence[str]
    ) -> list[str | None]: ...

    async def claim_report(self, event_id: str) -> ReportClaim:
        """TAKEN for the one caller that is to process the report now."""

    async def finish_report(self, event_id: str) -> None: ...

    async def release_report(self, event_id: str) -> None: ...

    async def cursor(self, integration: str) -> str | None: ...

    async def advance_cursor(self, integration: str, created: str) -> None: ...


class MemoryVerdictBook:
    """This process only (no Redis): bounded, oldest verdicts go first."""

    def __init__(self, *, window_seconds: float, max_entries: int) -> None:
        self._window = window_seconds
        self._max = max_entries
        self._verdicts: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._reports: dict[str, str] = {}
        self._cursors: dict[str, str] = {}

    async def mark(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        expiry = time.monotonic() + self._window
        for identifier, verdict in verdicts:
            key = scope.key(identifier)
            self._verdicts[key] = (verdict, expiry)
            self._verdicts.move_to_end(key)
        while len(self._verdicts) > self._max:
            self._verdicts.popitem(last=False)

    async def verdicts(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[str | None]:
        now = time.monotonic()
        found = [self._verdicts.get(scope.key(i)) for i in identifiers]
        return [v[0] if v is not None and v[1] > now else None for v in found]

    async def claim_report(self, event_id: str) -> ReportClaim:
        held = self._reports.get(event_id)
        if held is not None:
            return ReportClaim.DONE if held == "done" else ReportClaim.BUSY
        self._reports[event_id] = "pending"
        return ReportClaim.TAKEN

    async def finish_report(self, event_id: str) -> None:
        self._reports[event_id] = "done"

    async def release_report(self, event_id: str) -> None:
        if self._reports.get(event_id) == "pending":
            del self._reports[event_id]

    async def cursor(self, integration: str) -> str | None:
        return self._cursors.get(integration)

    async def advance_cursor(self, integration: str, created: str) -> None:
        if created > self._cursors.get(integration, ""):
            self._cursors[integration] = created


class RedisVerdictBook:
    """Shared by every replica and kept across restarts."""

    def __init__(self, connection: RedisConnection, *, window_seconds: float, owner: str) -> None:
        self._redis = connection
        self._window_ms = str(int(window_seconds * 1000))
        self._pending = f"pending:{owner}"
        self._prefix = connection.prefix
        self._claim = connection.script(_CLAIM_REPORT)
        self._release = connection.script(_RELEASE_REPORT)
        self._advance = connection.script(_ADVANCE)
        self._mark = connection.script(_MARK)

    def _verdict_key(self, scope: LedgerScope, identifier: str) -> str:
        return f"{self._prefix}meter-verdict:{scope.key(identifier)}"

    def _report_key(self, event_id: str) -> str:
        return f"{self._prefix}meter-report:{event_id}"

    async def mark(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        for start in range(0, len(verdicts), 500):
            chunk = verdicts[start : start + 500]
            keys = [self._verdict_key(scope, identifier) for identifier, _ in chunk]
            await self._redis.run(
                self._mark, keys, [self._window_ms, *(v for _, v in chunk)], use=_USE
            )

    async def verdicts(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[str | None]:
        if not identifiers:
            return []
        keys = [self._verdict_key(scope, identifier) for identifier in identifiers]
        values = await self._redis.get_many(keys, use=_USE)
        return [v.decode() if v is not None else None for v in values]

    async def claim_report(self, event_id: str) -> ReportClaim:
        lease = str(int(REPORT_LEASE_SECONDS * 1000))
        claimed = await self._redis.run(
            self._claim, [self._report_key(event_id)], [self._pending, lease], use=_USE
        )
        return _REPORT_CLAIMS.get(int(claimed), ReportClaim.BUSY)

    async def finish_report(self, event_id: str) -> None:
        await self._redis.put(
            self._report_key(event_id), b"done", ttl_seconds=REPORT_MEMORY_SECONDS, use=_USE
        )

    async def release_report(self, event_id: str) -> None:
        await self._redis.run(
            self._release, [self._report_key(event_id)], [self._pending], use=_USE
        )

    async def cursor(self, integration: str) -> str | None:
        (value,) = await self._redis.get_many(
            [f"{self._prefix}meter-report-cursor:{integration}"], use=_USE
        )
        return value.decode() if value is not None else None

    async def advance_cursor(self, integration: str, created: str) -> None:
        key = f"{self._prefix}meter-report-cursor:{integration}"
        await self._redis.run(self._advance, [key], [created], use=_USE)


def verdict_book(settings: Settings, redis: RedisConnection | None, owner: str) -> VerdictBook:
    """Redis when configured (shared, durable); else this process's memory."""
    window = settings.meter_dedup_window_seconds
    if redis is not None:
        return RedisVerdictBook(redis, window_seconds=window, owner=owner)
    return MemoryVerdictBook(window_seconds=window, max_entries=settings.meter_dedup_max_entries)
