"""The poller reads every page, processes oldest first, and moves its durable cursor only
past what was processed: a failure, or a report another replica is processing, leaves the
cursor before that report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumer.kafka.records import OutboundRecord
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.verdicts.book import MemoryVerdictBook, ReportClaim
from consumer.metering.verdicts.intake import ErrorIntake, StripeReader
from consumer.metering.verdicts.poller import ReportPoller
from consumer.observability.metrics import ServiceMetrics


def report(n: int) -> dict[str, Any]:
    return {
        "id": f"evt_{n}",
        "object": "v2.core.event",
        "type": "v1.billing.meter.no_meter_found",
        "created": f"2026-12-04T10:00:0{n}.000Z",
        "data": {
            "reason": {
                "error_types": [
                    {
                        "code": "no_meter",
                        "error_count": 1,
                        "sample_errors": [{"request": {"identifier": f"u{n}"}}],
                    }
                ]
            }
        },
    }


class PagedStripe(StripeReader):
    """Five reports listed newest first, two per page; fetching `fail` raises."""

    def __init__(self) -> None:
        self.listed: list[dict[str, object]] = []
        self.fail: str | None = None

    async def get(
        self,
        integration: str,
        path: str,
        params: dict[str, object],
        *,
        context: str | None = None,
    ) -> bytes:
        newest_first = [report(n) for n in (5, 4, 3, 2, 1)]
        if path.startswith("/v2/core/events/"):
            event_id = path.rsplit("/", 1)[1]
            if event_id == self.fail:
                raise RuntimeError("Stripe is away")
            return json.dumps(next(r for r in newest_first if r["id"] == event_id)).encode()
        self.listed.append(params)
        start = int(path.split("page=")[1]) if "page=" in path else 0
        created = params.get("created")
        since = str(created.get("gte", "")) if isinstance(created, dict) else ""
        matching = [r for r in newest_first if r["created"] >= since] if since else newest_first
        page = [{k: v for k, v in r.items() if k != "data"} for r in matching[start : start + 2]]
        more = start + 2 < len(matching)
        return json.dumps(
            {"data": page, "next_page_url": f"/v2/core/events?page={start + 2}" if more else None}
        ).encode()


def poller() -> tuple[ReportPoller, PagedStripe, MemoryVerdictBook, list[OutboundRecord]]:
    stripe = PagedStripe()
    book = MemoryVerdictBook(window_seconds=60, max_entries=100)
    published: list[OutboundRecord] = []

    async def publish(record: OutboundRecord) -> None:
        published.append(record)

    intake = ErrorIntake(
        stripe,
        publish,
        book,
        MemoryIdentifierLedger(window_seconds=60, lease_seconds=5, max_entries=100, owner="t"),
        ServiceMetrics(CollectorRegistry()),
        topic="errors",
    )
    reports = ReportPoller(
        stripe, intake, book, integrations=["default"], poll_seconds=60, lookback_hours=24
    )
    return reports, stripe, book, published


async def test_every_page_oldest_first_then_nothing_twice() -> None:
    """All five across three pages, oldest first; the next round processes none again."""
    reports, stripe, book, published = poller()
    assert await reports.poll_once() == 5
    assert [r.key for r in published] == [b"u1", b"u2", b"u3", b"u4", b"u5"]
    assert await book.cursor("default") == "2026-12-04T10:00:05.000Z"
    assert await reports.poll_once() == 0
    assert len(published) == 5
    assert stripe.listed[-1]["created"] == {"gte": "2026-12-04T10:00:05.000Z"}
    assert stripe.listed[-1]["types"] == [
        "v1.billing.meter.error_report_triggered",
        "v1.billing.meter.no_meter_found",
    ]


async def test_a_failed_report_keeps_the_cursor_before_it() -> None:
    """Fetching report 3 fails: 1 and 2 are processed, the cursor stops at 2; next round
    (Stripe back) processes 3, 4, 5."""
    reports, stripe, book, published = poller()
    stripe.fail = "evt_3"
    with pytest.raises(RuntimeError):
        await reports.poll_once()
    assert [r.key for r in published] == [b"u1", b"u2"]
    assert await book.cursor("default") == "2026-12-04T10:00:02.000Z"
    stripe.fail = None
    assert await reports.poll_once() == 3
    assert [r.key for r in published] == [b"u1", b"u2", b"u3", b"u4", b"u5"]


async def test_a_report_another_replica_is_processing_keeps_the_cursor_before_it() -> None:
    """Report 3 is held by another replica's poller (then it crashes, or fails): this round
    processes 1 and 2 and stops before 3 (the shared cursor must not pass a report that may
    never be finished); once the holder let go, the next round processes 3, 4, 5."""
    reports, _, book, published = poller()
    assert await book.claim_report("evt_3") is ReportClaim.TAKEN  # the other replica
    assert await reports.poll_once() == 2
    assert [r.key for r in published] == [b"u1", b"u2"]
    assert await book.cursor("default") == "2026-12-04T10:00:02.000Z"
    await book.release_report("evt_3")  # its lease ran out, or it failed
    assert await reports.poll_once() == 3
    assert [r.key for r in published] == [b"u1", b"u2", b"u3", b"u4", b"u5"]
