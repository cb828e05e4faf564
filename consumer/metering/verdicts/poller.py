"""The backstop: ``GET /v2/core/events`` for the two report types, from a durable cursor (the
newest ``created`` processed; with none yet, ``CONSUMER_METER_ERRORS_LOOKBACK_HOURS`` back),
every ``CONSUMER_METER_ERRORS_POLL_SECONDS``. Stripe lists newest first; the poller reads every
page, then processes oldest first, advancing the cursor after each report, so a failure
leaves the cursor before it. Reports the webhook already processed are claimed: skipped.
Every replica may poll: the intake's claim makes each report processed once. A report
another caller is processing right now ends the round before it: the cursor is shared,
and moving it past a report whose processing then fails (or whose replica dies) would
leave that report to nobody."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import msgspec

from consumer.metering.verdicts.book import VerdictBook
from consumer.metering.verdicts.intake import ErrorIntake, ReportBusy, StripeReader
from consumer.metering.verdicts.reports import REPORT_TYPES, ThinEvent
from consumer.observability.logs import get_logger

_log = get_logger()


class _Page(msgspec.Struct):
    data: list[ThinEvent] = []
    next_page_url: str | None = None


def rfc3339(moment: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
    return f"{whole}.{int(moment * 1000) % 1000:03d}Z"


class ReportPoller:
    def __init__(
        self,
        reader: StripeReader,
        intake: ErrorIntake,
        book: VerdictBook,
        *,
        integrations: Sequence[str],
        poll_seconds: float,
        lookback_hours: float,
    ) -> None:
        self._reader = reader
        self._intake = intake
        self._book = book
        self._integrations = tuple(integrations)
        self._poll_seconds = poll_seconds
        self._lookback_seconds = lookback_hours * 3600
        self._at_cursor: dict[str, set[str]] = {}  # ids processed at the cursor's instant

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; a failed round is logged and tried again next time."""
        while not stop.is_set():
            try:
                await self.poll_once()
            except Exception as exc:
                _log.warning(
                    "polling Stripe's meter error reports failed", extra={"error": repr(exc)}
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._poll_seconds)

    async def poll_once(self) -> int:
        """One round over every integration; the number of reports processed now."""
        processed = 0
        for integration in self._integrations:
            processed += await self._poll(integration)
        return processed

    async def _poll(self, integration: str) -> int:
        cursor = await self._book.cursor(integration)
        since = cursor or rfc3339(time.time() - self._lookback_seconds)
        events = await self._list(integration, since)
        seen = self._at_cursor.setdefault(integration, set())
        processed = 0
        for event in sorted(events, key=lambda e: e.created):  # oldest first
            if event.created == cursor and event.id in seen:
                continue
            try:
                taken = await self._intake.take(event.id, integration, "poller", event.context)
            except ReportBusy:  # next round, from here: done by then, or free again
                _log.info(
                    "a meter error report is being processed elsewhere; polling stops before it",
                    extra={"stripe_event_id": event.id, "integration": integration},
                )
                return processed
            processed += taken
            if event.created != cursor:
                cursor = event.created
                seen.clear()
            seen.add(event.id)
            await self._book.advance_cursor(integration, event.created)
        return processed

    async def _list(self, integration: str, since: str) -> list[ThinEvent]:
        params: dict[str, object] = {
            "types": list(REPORT_TYPES),
            "created": {"gte": since},
            "limit": 100,
        }
        page = msgspec.json.decode(
            await self._reader.get(integration, "/v2/core/events", params), type=_Page
        )
        events = list(page.data)
        while page.next_page_url:
            body = await self._reader.get(integration, page.next_page_url, {})
            page = msgspec.json.decode(body, type=_Page)
            events.extend(page.data)
        return events
