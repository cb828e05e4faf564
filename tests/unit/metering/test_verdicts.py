"""The verdict path without a network: error reports become the contract's records; refused
and cancelled meter events are recorded; the active meters refuse what no meter counts; the
usage sums move a rejected event's value."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from consumer.contract.errors import RequestRejected
from consumer.contract.requests import CreateMeterEvent, Request
from consumer.engine.processing.answer import Handled
from consumer.engine.processing.processor import RequestProcessor
from consumer.engine.reply_memory import ReplyMemory
from consumer.kafka.records import InboundRecord
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.events import MeterEvent
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.transports import SingleEventTransport
from consumer.metering.usage import MemoryUsageBook
from consumer.metering.verdicts.book import MemoryVerdictBook
from consumer.metering.verdicts.catalog import Meter, MeterCatalog
from consumer.metering.verdicts.refusals import MeterVerdicts
from consumer.metering.verdicts.reports import decode_report, error_records, rejections
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.settings.secret import Secret
from consumer.stripe.credential_gate import CredentialGate
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimiter
from consumer.stripe.retry import RetryPolicy
from tests.unit.fakes import FakeStripe, settings

SCOPE = LedgerScope("default", None)
REPORT: dict[str, Any] = {
    "id": "evt_1",
    "object": "v2.core.event",
    "type": "v1.billing.meter.error_report_triggered",
    "created": "2026-12-04T10:00:00.000Z",
    "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"},
    "data": {
        "reason": {
            "error_count": 4,
            "error_types": [
                {
                    "code": "meter_event_customer_not_found",
                    "error_count": 3,
                    "sample_errors": [
                        {"error_message": "no such customer", "request": {"identifier": "a"}}
                    ],
                },
                {
                    "code": "timestamp_in_future",
                    "error_count": 1,
                    "sample_errors": [{"error_message": "late", "request": {"identifier": "b"}}],
                },
            ],
        }
    },
}


def test_a_report_becomes_one_record_per_named_identifier_and_one_for_the_rest() -> None:
    """`a` and `b` keyed by themselves; the 2 unnamed of code 1 in one record keyed by the
    meter, identifier null; every field the contract lists."""
    report = decode_report(json.dumps(REPORT).encode())
    records = error_records(
        report, integration="default", event_names={"mtr_1": "api_calls"}, topic="errors", now=0
    )
    values = [json.loads(r.value) for r in records]
    assert [r.key for r in records] == [b"a", b"mtr_1", b"b"]
    assert [(v["identifier"], v["error_count"], v["sample"]) for v in values] == [
        ("a", 1, True),
        (None, 2, False),
        ("b", 1, True),
    ]
    assert values[0] == {
        "identifier": "a",
        "event_name": "api_calls",
        "code": "meter_event_customer_not_found",
        "message": "no such customer",
        "error_count": 1,
        "sample": True,
        "meter_id": "mtr_1",
        "stripe_event_id": "evt_1",
        "integration": "default",
        "stripe_account": None,
        "reported_at": "1970-01-01T00:00:00Z",
    }
    assert rejections(report) == [
        ("a", "meter_event_customer_not_found"),
        ("b", "timestamp_in_future"),
    ]


def test_no_meter_found_names_no_meter() -> None:
    """`no_meter_found` has no related object: meter_id null, the rest keyed by the event."""
    raw = {**REPORT, "type": "v1.billing.meter.no_meter_found"}
    del raw["related_object"]
    report = decode_report(json.dumps(raw).encode())
    records = error_records(report, integration="default", event_names={}, topic="errors")
    assert {json.loads(r.value)["meter_id"] for r in records} == {None}
    assert records[1].key == b"evt_1"


def meter(**overrides: Any) -> Meter:
    return msgspec.convert({"id": "mtr_1", "event_name": "api_calls", **overrides}, Meter)


def event(**fields: Any) -> CreateMeterEvent:
    raw = {"operation": "create_meter_event", "event_name": "api_calls", "customer_id": "cus_1"}
    request = msgspec.convert({**raw, **fields}, Request)
    assert isinstance(request, CreateMeterEvent)
    return request


@pytest.mark.parametrize(
    ("meters", "fields", "param"),
    [
        ({}, {}, "$.event_name"),
        ({"api_calls": meter(customer_mapping={"event_payload_key": "user"})}, {}, "$.customer_id"),
        ({"api_calls": meter(value_settings={"event_payload_key": "tokens"})}, {}, "$.value"),
    ],
)
def test_the_catalog_refuses_what_no_active_meter_counts(
    meters: dict[str, Meter], fields: dict[str, Any], param: str
) -> None:
    """No active meter for the name, or a meter reading other payload keys: refused on the
    field Stripe would reject later."""
    catalog = MeterCatalog()
    catalog.active = meters
    with pytest.raises(RequestRejected) as refused:
        catalog.check(event(**fields))
    assert refused.value.detail.param == param


def test_the_catalog_passes_what_counts_and_refuses_nothing_before_its_first_read() -> None:
    """A count meter ignores the value key; an unread catalog never guesses."""
    catalog = MeterCatalog()
    catalog.check(event(event_name="anything"))
    catalog.active = {
        "api_calls": meter(
            default_aggregation={"formula": "count"}, value_settings={"event_payload_key": "x"}
        )
    }
    catalog.check(event())


class Harness:
    def __init__(self, active: dict[str, Meter] | None = None) -> None:
        self.stripe = FakeStripe()
        self.registry = CollectorRegistry()
        metrics = ServiceMetrics(self.registry)
        self.book = MemoryVerdictBook(window_seconds=3600, max_entries=100)
        self.catalog = MeterCatalog()
        self.catalog.active = active
        config = settings()
        executor = StripeCallExecutor(
            self.stripe,
            metrics,
            retry=RetryPolicy(budget_seconds=0.5, base_delay_seconds=0.001, max_delay_seconds=0.01),
            limiters={name: RateLimiter(10_000) for name in config.credentials},
            locks=ObjectLocks(),
            gate=CredentialGate(probe_interval_seconds=0.05),
        )
        ledger = MemoryIdentifierLedger(
            window_seconds=60, lease_seconds=5, max_entries=100, owner="t"
        )
        self.processor = RequestProcessor(
            config,
            executor,
            metrics,
            memory=ReplyMemory(100, 3600),
            meter_events=MeterEventBatcher(
                SingleEventTransport(executor), ledger, metrics, linger_seconds=0.001
            ),
            verdicts=MeterVerdicts(self.book, self.catalog, topic="errors"),
            wall_clock=time.time,
        )

    async def process(self, value: dict[str, Any], topic: str = "stripe.requests") -> Handled:
        record = InboundRecord(topic, 0, 1, b"k", msgspec.json.encode(value), (), 0)
        handled = await self.processor.process(record)
        assert isinstance(handled, Handled)
        return handled


METER_EVENT = {
    "operation": "create_meter_event",
    "event_name": "api_calls",
    "customer_id": "cus_1",
    "identifier": "use-1",
    "taskId": "t1",
}


async def test_a_refused_meter_event_is_on_the_topic_and_rejected_in_the_ledger() -> None:
    """A timestamp an hour ahead: the reply names `$.timestamp`, a validation_error record
    keyed by the identifier goes to the meter-errors topic, the ledger says rejected."""
    h = Harness()
    handled = await h.process({**METER_EVENT, "timestamp": int(time.time()) + 3600})
    assert handled.reply is not None
    assert json.loads(handled.reply.value)["error"]["param"] == "$.timestamp"
    assert handled.meter_error is not None
    assert (handled.meter_error.topic, handled.meter_error.key) == ("errors", b"use-1")
    record = json.loads(handled.meter_error.value)
    assert (record["code"], record["event_name"], record["stripe_event_id"]) == (
        "validation_error",
        "api_calls",
        None,
    )
    assert record["message"].startswith("$.timestamp: ")
    assert await h.book.verdicts(SCOPE, ["use-1"]) == ["rejected:validation_error"]
    assert h.stripe.calls == []


async def test_an_event_name_without_an_active_meter_is_refused_before_sending() -> None:
    """With the active meters read, `legacy_calls` (inactive) never reaches Stripe."""
    h = Harness(active={"api_calls": meter()})
    handled = await h.process({**METER_EVENT, "event_name": "legacy_calls"})
    assert json.loads(handled.reply.value)["error"]["param"] == "$.event_name"  # type: ignore[union-attr]
    assert handled.meter_error is not None
    assert h.stripe.calls == []
    ok = await h.process(METER_EVENT)
    assert ok.meter_error is None
    assert len(h.stripe.calls) == 1


async def test_v1_meter_events_send_the_identifier_as_the_idempotency_key() -> None:
    """The contract: on the v1 endpoint Idempotency-Key is the event's identifier, so an
    error report naming the idempotency key names the event."""
    h = Harness()
    await h.process({**METER_EVENT, "idempotency_key": "something-else"})
    [call] = h.stripe.calls
    assert call.idempotency_key == "use-1"


async def test_a_cancelled_meter_event_is_cancelled_in_the_ledger() -> None:
    """cancel_meter_event completes, then the ledger says `cancelled`; other requests leave
    no verdict."""
    h = Harness()
    handled = await h.process(
        {"operation": "cancel_meter_event", "event_name": "api_calls", "identifier": "use-9"}
    )
    assert json.loads(handled.reply.value)["status"] == "COMPLETED"  # type: ignore[union-attr]
    assert await h.book.verdicts(SCOPE, ["use-9", "use-1"]) == ["cancelled", None]


async def test_a_rejection_moves_the_value_from_delivered_to_rejected() -> None:
    """Usage sums per event name, customer and hour; a named rejection moves its value."""
    book = MemoryUsageBook()
    credential = StripeCredential("default", Secret("sk_test_123"))
    hour = 1_780_000_000 - 1_780_000_000 % 3600
    events = [
        MeterEvent(
            SCOPE,
            credential,
            "api_calls",
            f"u{i}",
            {"stripe_customer_id": "cus_1", "value": str(i)},
            hour + i,
            "k",
        )
        for i in (1, 2, 3)
    ]
    await book.delivered(SCOPE, events)
    await book.rejected(SCOPE, [("u2", "meter_event_customer_not_found"), ("unknown", "x")])
    delivered, rejected = await book.sums(SCOPE, hour)
    assert delivered == {("api_calls", "cus_1"): 6.0}
    assert rejected == {
        ("api_calls", "cus_1", "meter_event_customer_not_found"): 2.0,
        ("api_calls", "cus_1", "meter_event_customer_not_found", "n"): 1.0,
    }


async def test_a_redis_blip_delays_the_refusals_verdict_but_does_not_lose_it() -> None:
    """Redis fails twice while a refusal is recorded: the verdict is recorded after it."""
    from consumer.shared_state.redis_client import SharedStateUnavailable

    class Blinking(MemoryVerdictBook):
        failures = 2

        async def mark(self, scope: LedgerScope, verdicts: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise SharedStateUnavailable("Redis did not answer")
            await super().mark(scope, verdicts)

    book = Blinking(window_seconds=60, max_entries=10)
    verdicts = MeterVerdicts(book, MeterCatalog(), topic="errors")
    await verdicts.refused(event(identifier="use-7"), "use-7")
    assert await book.verdicts(SCOPE, ["use-7"]) == ["rejected:validation_error"]
