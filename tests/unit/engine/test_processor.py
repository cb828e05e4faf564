"""The processor: one record in, the right reply (and DLQ record) out, Stripe called only
when it should be, with the derived idempotency key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from consumer.contract.errors import StripeFailure
from consumer.engine.processing.answer import Handled
from consumer.engine.processing.processor import HeldRequest, RequestProcessor
from consumer.engine.reply_memory import ReplyMemory
from consumer.kafka.records import InboundRecord
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.transports import SingleEventTransport
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.stripe.credential_gate import CredentialGate
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimiter
from consumer.stripe.retry import RetryPolicy
from tests.unit.fakes import FakeStripe, failure, settings

NOW = 1_780_000_000.0
CHARGE: dict[str, Any] = {
    "operation": "create_charge",
    "amount": 4200,
    "currency": "usd",
    "source": "tok_visa",
    "taskId": "task-1",
    "taskRefName": "charge_card",
    "workflowInstanceId": "wf-1",
    "correlationId": "order-1",
}


class Harness:
    def __init__(
        self,
        config: Settings | None = None,
        stripe: FakeStripe | None = None,
        memory: ReplyMemory | None = None,
    ) -> None:
        self.settings = config or settings()
        self.stripe = stripe or FakeStripe()
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.registry)
        self.executor = StripeCallExecutor(
            self.stripe,
            self.metrics,
            retry=RetryPolicy(budget_seconds=0.5, base_delay_seconds=0.001, max_delay_seconds=0.01),
            limiters={name: RateLimiter(10_000) for name in self.settings.credentials},
            locks=ObjectLocks(),
            gate=CredentialGate(probe_interval_seconds=0.05),
        )
        self.ledger = MemoryIdentifierLedger(
            window_seconds=3600, lease_seconds=5, max_entries=1000, owner="t"
        )
        self.memory = ReplyMemory(1000, 3600) if memory is None else memory
        self.processor = RequestProcessor(
            self.settings,
            self.executor,
            self.metrics,
            memory=self.memory,
            meter_events=MeterEventBatcher(
                SingleEventTransport(self.executor), self.ledger, self.metrics, linger_seconds=0.001
            ),
            wall_clock=lambda: NOW,
        )
        self.offset = 0

    async def process(
        self,
        value: dict[str, Any] | bytes | None,
        *,
        key: bytes | None = b"task-1",
        topic: str = "stripe.requests",
    ) -> Handled:
        raw = value if isinstance(value, bytes) or value is None else msgspec.json.encode(value)
        self.offset += 1
        record = InboundRecord(topic, 0, self.offset, key, raw, (("h", b"v"),), 0)
        handled = await self.processor.process(record)
        assert isinstance(handled, Handled), "held for a rejected key, not answered"
        if handled.reply is not None and handled.memory is not None:
            # As the pipeline's delivery does before sending a reply: a failure is remembered.
            await self.memory.remember_failure(handled.memory, handled.outcome)
        return handled

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def reply_of(handled: Handled) -> dict[str, Any]:
    assert handled.reply is not None
    result: dict[str, Any] = json.loads(handled.reply.value)
    return result


async def test_completed_reply_echoes_conductor_fields_and_carries_the_object() -> None:
    """A valid request calls Stripe once with the derived key and replies COMPLETED."""
    h = Harness()
    handled = await h.process({**CHARGE, "_createdBy": "jane"})
    reply = reply_of(handled)
    assert handled.reply is not None
    assert (handled.reply.topic, handled.reply.key) == ("stripe.replies", b"task-1")
    assert reply["status"] == "COMPLETED"
    assert reply["output"] == {"object": "charges", "id": "obj_new"}
    assert {
        k: reply[k]
        for k in ("taskId", "taskRefName", "workflowInstanceId", "correlationId", "_createdBy")
    } == {
        "taskId": "task-1",
        "taskRefName": "charge_card",
        "workflowInstanceId": "wf-1",
        "correlationId": "order-1",
        "_createdBy": "jane",
    }
    assert reply["error"] is None
    assert reply["reasonForIncompletion"] is None
    assert reply["idempotency_key"].startswith("wf-1:charge_card:")
    assert (reply["attempts"], reply["deduplicated"]) == (1, False)
    [call] = h.stripe.calls
    assert call.idempotency_key == reply["idempotency_key"]
    assert call.call.params == {"amount": 4200, "currency": "usd", "source": "tok_visa"}


async def test_get_requests_carry_no_idempotency_key_to_stripe() -> None:
    """Only POSTs carry the key (the gateway drops it for GET/DELETE)."""
    h = Harness()
    await h.process({"operation": "get_customer", "customer_id": "cus_1"})
    assert h.stripe.calls[0].call.writes is False


async def test_missing_task_id_falls_back_to_record_key() -> None:
    """Without taskId in the value, the reply's taskId is the record key."""
    h = Harness()
    reply = reply_of(await h.process({"operation": "get_balance"}, key=b"conductor-task-7"))
    assert reply["taskId"] == "conductor-task-7"


async def test_republished_request_is_answered_from_memory() -> None:
    """The same logical request again: answered from memory, no second Stripe call."""
    h = Harness()
    first = reply_of(await h.process(CHARGE))
    second = reply_of(await h.process({**CHARGE, "taskId": "task-2"}, key=b"task-2"))
    assert len(h.stripe.calls) == 1
    assert second["deduplicated"] is True
    assert second["attempts"] == 0
    assert second["taskId"] == "task-2"  # echoes the new request, not the remembered one
    assert second["output"] == first["output"]
    assert h.metric("stripe_consumer_deduplicated_total", kind="reply_memory") == 1


async def test_reused_explicit_key_with_other_parameters_reaches_stripe() -> None:
    """Memory answers only the same request; Stripe judges a reused key with new params."""
    h = Harness()
    await h.process({**CHARGE, "idempotency_key": "order-1"})
    await h.process({**CHARGE, "idempotency_key": "order-1", "amount": 1})
    assert len(h.stripe.calls) == 2


async def test_transient_failures_are_retried_with_the_same_key() -> None:
    """Rate limits and 5xx are retried in process; every attempt carries the same key."""
    h = Harness(
        stripe=FakeStripe(
            failures=[
                failure("rate_limit_error", retryable=True),
                failure("api_error", retryable=True),
            ]
        )
    )
    reply = reply_of(await h.process(CHARGE))
    assert reply["status"] == "COMPLETED"
    assert reply["attempts"] == 3
    assert len({c.idempotency_key for c in h.stripe.calls}) == 1
    assert h.metric("stripe_consumer_stripe_retries_total", operation="create_charge") == 2


async def test_transient_failure_outliving_the_budget_is_failed_and_a_copy_is_not_run() -> None:
    """After the retry budget, FAILED (retryable). A copy of that task (same taskId) is
    answered FAILED from memory, never run; a Conductor retry (a new taskId, the same
    workflow and task reference) runs, under the same idempotency key."""
    h = Harness(
        stripe=FakeStripe(failures=[failure("api_error", retryable=True, message="down")] * 1000)
    )
    reply = reply_of(await h.process(CHARGE))
    assert reply["status"] == "FAILED"
    assert reply["error"]["retryable"] is True
    assert reply["reasonForIncompletion"] == "api_error: down"
    calls = len(h.stripe.calls)
    assert calls > 1
    h.stripe.failures.clear()
    copies = [reply_of(await h.process(CHARGE)) for _ in range(4)]
    assert [(c["status"], c["deduplicated"], c["attempts"]) for c in copies] == [
        ("FAILED", True, 0)
    ] * 4
    assert copies[0]["error"] == reply["error"]
    assert len(h.stripe.calls) == calls
    retry = reply_of(await h.process({**CHARGE, "taskId": "task-1-retry"}, key=b"task-1-retry"))
    assert retry["status"] == "COMPLETED"
    assert len(h.stripe.calls) == calls + 1
    assert h.stripe.calls[-1].idempotency_key == reply["idempotency_key"]
    late_copy = reply_of(await h.process(CHARGE))
    assert (late_copy["status"], late_copy["deduplicated"]) == ("FAILED", True)
    assert len(h.stripe.calls) == calls + 1


async def test_a_retry_of_a_declined_task_is_not_answered_from_the_old_tasks_failure() -> None:
    """Failures are remembered by taskId: a Conductor retry (new taskId) of a declined task
    reaches Stripe again (which replays or runs it under the same key)."""
    decline = failure("card_error", retryable=False, code="card_declined", message="Declined.")
    h = Harness(stripe=FakeStripe(failures=[decline]))
    assert reply_of(await h.process(CHARGE))["status"] == "FAILED_WITH_TERMINAL_ERROR"
    retry = reply_of(await h.process({**CHARGE, "taskId": "task-9"}, key=b"task-9"))
    assert (retry["status"], retry["deduplicated"]) == ("COMPLETED", False)
    assert len(h.stripe.calls) == 2


async def test_a_failure_is_remembered_by_record_key_when_there_is_no_task_id() -> None:
    """Without taskId the record key names the task (as in the reply): a copy of the same
    record is answered as failed; another request under that key still runs."""
    decline = failure("card_error", retryable=False, code="card_declined", message="Declined.")
    h = Harness(stripe=FakeStripe(failures=[decline]))
    request = {k: v for k, v in CHARGE.items() if k != "taskId"}
    assert reply_of(await h.process(request, key=b"k-1"))["status"] == "FAILED_WITH_TERMINAL_ERROR"
    copy = reply_of(await h.process(request, key=b"k-1"))
    assert (copy["status"], copy["deduplicated"]) == ("FAILED_WITH_TERMINAL_ERROR", True)
    other = reply_of(await h.process({**request, "idempotency_key": "order-2"}, key=b"k-1"))
    assert other["status"] == "COMPLETED"
    assert len(h.stripe.calls) == 2


def key_rejected() -> StripeFailure:
    return failure("authentication_error", retryable=False, authentication=True, http_status=401)


@pytest.mark.parametrize(
    "request_value",
    [
        CHARGE,
        {
            "operation": "create_meter_event",
            "event_name": "e",
            "customer_id": "cus_1",
            "taskId": "m",
        },
    ],
)
async def test_rejected_key_holds_the_request_unanswered_and_unremembered(
    request_value: dict[str, Any],
) -> None:
    """A 401 for the platform key: the request is held (no reply, nothing remembered); once
    the key works, the same request reaches Stripe again and completes."""
    h = Harness(stripe=FakeStripe(failures=[key_rejected()]))
    record = InboundRecord(
        "stripe.requests", 0, 1, b"task-1", msgspec.json.encode(request_value), (), 0
    )
    held = await h.processor.process(record)
    assert isinstance(held, HeldRequest)
    assert held.integration == "default"
    assert h.executor.gate.rejected() == {"default"}
    h.executor.gate.accept("default")
    reply = reply_of(await h.process(request_value))
    assert reply["status"] == "COMPLETED"
    assert len(h.stripe.calls) == 2


async def test_connected_account_refusal_is_answered_terminal_at_once() -> None:
    """A 401 naming a connected account fails that request (FAILED_WITH_TERMINAL_ERROR,
    authentication_error) at once; the integration is not held."""
    refused = failure(
        "authentication_error",
        retryable=False,
        authentication=True,
        http_status=401,
        code="account_invalid",
        message="The provided key does not have access to account 'acct_1Gone'",
    )
    h = Harness(stripe=FakeStripe(failures=[refused]))
    reply = reply_of(await h.process({**CHARGE, "stripe_account": "acct_1Gone"}))
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert (reply["error"]["type"], reply["error"]["code"]) == (
        "authentication_error",
        "account_invalid",
    )
    assert h.executor.gate.rejected() == set()
    assert (
        reply_of(await h.process({**CHARGE, "taskId": "t2", "amount": 1}, key=b"t2"))["status"]
        == "COMPLETED"
    )


async def test_card_decline_is_terminal_not_retried_and_remembered() -> None:
    """A decline fails terminally at once; a republish (same taskId) is answered from
    memory."""
    decline = failure(
        "card_error",
        retryable=False,
        code="card_declined",
        decline_code="generic_decline",
        message="Your card was declined.",
    )
    h = Harness(stripe=FakeStripe(failures=[decline]))
    reply = reply_of(await h.process(CHARGE))
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert reply["reasonForIncompletion"] == "generic_decline: Your card was declined."
    assert reply["error"]["decline_code"] == "generic_decline"
    again = reply_of(await h.process(CHARGE))
    assert again["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert again["deduplicated"] is True
    assert len(h.stripe.calls) == 1


async def test_allowed_custom_reply_topic_is_used() -> None:
    """`reply_topic` matching the allow-list receives the reply."""
    h = Harness()
    handled = await h.process({**CHARGE, "reply_topic": "stripe.replies.billing"})
    assert handled.reply is not None
    assert handled.reply.topic == "stripe.replies.billing"


async def test_disallowed_reply_topic_is_rejected_to_the_default_topic() -> None:
    """Any other reply topic is a terminal validation error, answered on the default topic."""
    h = Harness()
    handled = await h.process({**CHARGE, "reply_topic": "payments.ledger"})
    reply = reply_of(handled)
    assert handled.reply is not None
    assert handled.reply.topic == "stripe.replies"
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert reply["error"]["type"] == "validation_error"
    assert reply["error"]["param"] == "$.reply_topic"
    assert reply["error"]["message"] == (
        "Reply topic 'payments.ledger' is not allowed; "
        "expected stripe.replies or stripe.replies.<suffix>"
    )
    assert h.stripe.calls == []


async def test_invalid_request_replies_on_its_allowed_reply_topic() -> None:
    """A rejected request still answers on its (allowed) reply topic, echoing taskId."""
    h = Harness()
    handled = await h.process({**CHARGE, "amount": 0, "reply_topic": "stripe.replies.billing"})
    reply = reply_of(handled)
    assert handled.reply is not None
    assert handled.reply.topic == "stripe.replies.billing"
    assert (reply["taskId"], reply["error"]["param"]) == ("task-1", "$.amount")
    assert reply["reasonForIncompletion"] == "validation_error: Expected `int` >= 1 - at `$.amount`"


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        (
            {
                "operation": "create_meter_event",
                "event_name": "api_requests",
                "customer_id": "cus_1",
                "integration": "nobody",
            },
            "$.integration",
        ),
        ({"operation": "get_balance"}, "$.operation"),
    ],
)
async def test_routing_rejection_replies_on_its_allowed_reply_topic(
    request_fields: dict[str, str], param: str
) -> None:
    """Rejections found while routing (an unknown integration; an operation the meter topic
    does not take) also answer where the workflow listens, not on the default topic."""
    h = Harness()
    request = {**request_fields, "taskId": "task-9", "reply_topic": "stripe.replies.billing"}
    handled = await h.process(request, topic="stripe.meter-events")
    assert handled.reply is not None
    assert handled.reply.topic == "stripe.replies.billing"
    assert reply_of(handled)["error"]["param"] == param
    assert h.stripe.calls == []


async def test_named_integration_uses_its_own_key(tmp_path: Any) -> None:
    """`integration` picks the configured credential; an unknown one is rejected."""
    (tmp_path / "billing").write_text("sk_test_51BillingIntegrationKey\n")
    h = Harness(config=settings(STRIPE_CREDENTIALS_DIR=str(tmp_path)))
    await h.process({**CHARGE, "integration": "billing"})
    assert h.stripe.calls[0].api_key == "sk_test_51BillingIntegrationKey"
    reply = reply_of(await h.process({**CHARGE, "integration": "marketing"}))
    assert reply["error"]["param"] == "$.integration"
    assert (
        reply["error"]["message"] == "Unknown integration 'marketing'; configured: billing, default"
    )
    assert len(h.stripe.calls) == 1


async def test_connected_account_is_passed_to_stripe() -> None:
    """`stripe_account` is sent as Stripe-Account."""
    h = Harness()
    await h.process({**CHARGE, "stripe_account": "acct_1Abc"})
    assert h.stripe.calls[0].stripe_account == "acct_1Abc"


@pytest.mark.parametrize(
    ("value", "reason"), [(b"not json", "not_json"), (b"[1]", "not_object"), (b"\xff", "not_utf8")]
)
async def test_dead_letter_keeps_the_record_and_fails_the_task(value: bytes, reason: str) -> None:
    """A non-object goes to the DLQ unchanged, with provenance headers; its key gets a reply."""
    h = Harness()
    handled = await h.process(value, key=b"task-9")
    assert handled.dead_letter is not None
    assert handled.dead_letter.topic == "stripe.dlq"
    assert handled.dead_letter.value == value
    assert handled.dead_letter.key == b"task-9"
    headers = dict(handled.dead_letter.headers)
    assert headers["dlq.source.topic"] == b"stripe.requests"
    assert headers["dlq.source.partition"] == b"0"
    assert headers["dlq.source.offset"] == str(h.offset).encode()
    assert headers["dlq.reason"] == reason.encode()
    assert headers["h"] == b"v"  # the original headers are kept
    reply = reply_of(handled)
    assert reply["taskId"] == "task-9"
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert (reply["error"]["type"], reply["error"]["param"]) == ("validation_error", "$")
    assert h.stripe.calls == []


async def test_dead_letter_without_key_gets_no_reply() -> None:
    """With no key there is no task to fail: DLQ only."""
    handled = await Harness().process(b"garbage", key=None)
    assert handled.dead_letter is not None
    assert handled.reply is None


async def test_meter_topic_takes_meter_events_only() -> None:
    """Other operations on the meter topic are rejected on `$.operation`."""
    h = Harness()
    reply = reply_of(await h.process(CHARGE, topic="stripe.meter-events"))
    assert reply["error"]["param"] == "$.operation"
    assert h.stripe.calls == []


async def test_meter_event_without_task_id_on_meter_topic_gets_no_reply() -> None:
    """High-volume producers get no replies unless they ask for one."""
    h = Harness()
    event = {
        "operation": "create_meter_event",
        "event_name": "api_requests",
        "customer_id": "cus_1",
    }
    quiet = await h.process(event, key=b"cus_1", topic="stripe.meter-events")
    assert quiet.reply is None
    assert quiet.outcome.status == "COMPLETED"
    asked = await h.process({**event, "taskId": "t"}, key=b"cus_1", topic="stripe.meter-events")
    assert asked.reply is not None


async def test_meter_event_identifier_is_derived_and_sent() -> None:
    """Without `identifier`, the derived key (<= 100 chars) is sent as the identifier."""
    h = Harness()
    await h.process(
        {
            "operation": "create_meter_event",
            "event_name": "e",
            "customer_id": "cus_1",
            "workflowInstanceId": "wf",
            "taskRefName": "meter",
        }
    )
    identifier = h.stripe.calls[0].call.params["identifier"]
    assert identifier.startswith("wf:meter:")
    assert len(identifier) <= 100


async def test_stripe_saying_identifier_exists_counts_as_delivered() -> None:
    """Stripe's duplicate-identifier answer is COMPLETED and deduplicated, not an error."""
    exists = failure(
        "invalid_request_error",
        retryable=False,
        message="An event already exists with identifier i-1.",
    )
    h = Harness(stripe=FakeStripe(failures=[exists]))
    reply = reply_of(
        await h.process(
            {
                "operation": "create_meter_event",
                "event_name": "e",
                "customer_id": "cus_1",
                "identifier": "i-1",
                "taskId": "t",
            }
        )
    )
    assert (reply["status"], reply["deduplicated"]) == ("COMPLETED", True)
    assert reply["output"]["identifier"] == "i-1"
    assert h.metric("stripe_consumer_deduplicated_total", kind="stripe_identifier") == 1


async def test_unexpected_error_fails_the_task_and_keeps_the_record() -> None:
    """A bug in the service never crashes it: FAILED reply, record kept in the DLQ."""

    class Broken(FakeStripe):
        async def call(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("bug")

    h = Harness(stripe=Broken())
    handled = await h.process(CHARGE)
    reply = reply_of(handled)
    assert reply["status"] == "FAILED"
    assert reply["error"]["type"] == "internal_error"
    assert handled.dead_letter is not None
    assert handled.dead_letter_reason == "internal_error"


async def test_an_internal_error_is_remembered_and_a_copy_answered_the_same() -> None:
    """An internal error answers the task FAILED; once the bug is gone (or Stripe is back) a
    copy of that task is answered the same from memory, never run."""

    class BrokenOnce(FakeStripe):
        broken = True

        async def call(self, *args: Any, **kwargs: Any) -> Any:
            if self.broken:
                raise RuntimeError("bug")
            return await super().call(*args, **kwargs)

    stripe = BrokenOnce()
    h = Harness(stripe=stripe)
    first = reply_of(await h.process(CHARGE))
    stripe.broken = False
    copy = reply_of(await h.process(CHARGE))
    assert (first["status"], first["error"]["type"]) == ("FAILED", "internal_error")
    assert (copy["status"], copy["deduplicated"], copy["error"]) == ("FAILED", True, first["error"])
    assert stripe.calls == []


async def test_a_request_rejected_for_an_unknown_integration_stays_failed_once_configured(
    tmp_path: Path,
) -> None:
    """Refused for an unknown integration (FAILED_WITH_TERMINAL_ERROR); after a rollout that
    configures it (the memory shared through Redis), a copy of the task is answered the same,
    never charged."""
    memory = ReplyMemory(1000, 3600)
    before = Harness(memory=memory)
    request = {**CHARGE, "integration": "billing"}
    first = reply_of(await before.process(request))
    (tmp_path / "billing").write_text("sk_test_51BillingKeyForUnitTests")
    after = Harness(config=settings(STRIPE_CREDENTIALS_DIR=str(tmp_path)), memory=memory)
    copy = reply_of(await after.process(request))
    assert first["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "Unknown integration" in first["error"]["message"]
    assert (copy["status"], copy["deduplicated"]) == ("FAILED_WITH_TERMINAL_ERROR", True)
    assert after.stripe.calls == []


METER = {"operation": "create_meter_event", "event_name": "api_requests", "customer_id": "cus_1"}


async def test_delivered_identifier_is_not_sent_again() -> None:
    """Two events with one identifier (different records, different tasks): Stripe gets one."""
    h = Harness()
    first = reply_of(await h.process({**METER, "identifier": "use-1", "taskId": "a"}, key=b"a"))
    second = reply_of(await h.process({**METER, "identifier": "use-1", "taskId": "b"}, key=b"b"))
    assert (first["deduplicated"], second["deduplicated"]) == (False, True)
    assert second["status"] == "COMPLETED"
    assert len(h.stripe.calls) == 1
    assert h.metric("stripe_consumer_deduplicated_total", kind="meter_identifier") == 1


async def test_quiet_meter_event_that_fails_for_good_goes_to_the_dlq() -> None:
    """No reply is due, so a refused event is kept on the DLQ instead of vanishing."""
    refused = failure("invalid_request_error", retryable=False, message="No such customer")
    h = Harness(stripe=FakeStripe(failures=[refused]))
    handled = await h.process(METER, key=b"cus_1", topic="stripe.meter-events")
    assert handled.reply is None
    assert handled.dead_letter is not None
    assert handled.dead_letter_reason == "refused"
    assert (
        dict(handled.dead_letter.headers)["dlq.detail"]
        == b"invalid_request_error: No such customer"
    )


async def test_quiet_invalid_meter_event_goes_to_the_dlq() -> None:
    """An invalid event on the meter topic with no reply due: DLQ, reason `rejected`."""
    h = Harness()
    handled = await h.process({**METER, "value": "lots"}, key=b"cus_1", topic="stripe.meter-events")
    assert handled.reply is None
    assert handled.dead_letter is not None
    assert handled.dead_letter_reason == "rejected"
    assert (
        dict(handled.dead_letter.headers)["dlq.detail"]
        == b"validation_error: Expected a number, got 'lots'"
    )
