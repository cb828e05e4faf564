"""The Stripe stage: a prepared request's outcome, from memory when it was answered before,
else from Stripe (through the executor, or a meter event through the batcher), then
remembered: a completion by idempotency key here; a failure by taskId as its reply is sent
(the pipeline's delivery, the one place every failure reply passes; ``reply_memory.py``).
While Stripe rejects the integration's key the request is not answered:
:class:`~consumer.stripe.credential_gate.CredentialHeld` is raised and the pipeline holds it."""

from __future__ import annotations

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.contract.requests import CancelMeterEvent, CreateMeterEvent, OperationRequest
from consumer.engine.processing.prepare import Prepared, meter_event
from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import ReplyMemory
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.verdicts.refusals import MeterVerdicts
from consumer.observability.metrics import ServiceMetrics
from consumer.operations import stripe_call
from consumer.settings import StripeCredential
from consumer.stripe.credential_gate import CredentialHeld
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.retry import Attempts


class Execution:
    """A prepared request's outcome: remembered, or from Stripe and then remembered."""

    def __init__(
        self,
        executor: StripeCallExecutor,
        metrics: ServiceMetrics,
        *,
        memory: ReplyMemory,
        meter_events: MeterEventBatcher,
        verdicts: MeterVerdicts | None = None,
    ) -> None:
        self._verdicts = verdicts
        self._executor = executor
        self._metrics = metrics
        self._memory = memory
        self._meter_events = meter_events

    async def outcome(self, prepared: Prepared) -> Outcome:
        """CredentialHeld when Stripe rejects the integration's key (nothing remembered)."""
        request = prepared.request
        remembered = await self.remembered(prepared)
        if remembered is not None:
            return remembered
        if isinstance(request, CreateMeterEvent):
            event = meter_event(request, prepared)
            result = await self._meter_events.deliver(event)
            if result.status == "held":
                raise CredentialHeld(prepared.credential.integration)
            outcome = meter_outcome(event, result)
        else:
            outcome = await self._execute(request, prepared.credential, prepared.idempotency_key)
            if isinstance(request, CancelMeterEvent) and outcome.status == "COMPLETED":
                await self._cancelled(request)
        if outcome.status == "COMPLETED":  # a failure is remembered as its reply is sent
            slot = prepared.memory
            await self._memory.remember(slot.keys, slot.request_hash, outcome)
        return outcome

    async def _cancelled(self, request: CancelMeterEvent) -> None:
        """The ledger's `cancelled`: Stripe took the adjustment."""
        if self._verdicts is not None:
            await self._verdicts.cancelled(request)

    async def remembered(self, prepared: Prepared) -> Outcome | None:
        """The answer already given to this request (a failure of this task, or a completion
        of this request), marked as from memory; None when there is none."""
        slot = prepared.memory
        remembered = await self._memory.recall(slot.keys, slot.request_hash)
        if remembered is None:
            return None
        self._metrics.deduplicated.labels("reply_memory").inc()
        return remembered.remembered()

    async def _execute(
        self, request: OperationRequest, credential: StripeCredential, key: str
    ) -> Outcome:
        attempts = Attempts()
        try:
            response = await self._executor.execute(
                stripe_call(request),
                operation=request.operation,
                credential=credential,
                stripe_account=request.stripe_account
                if isinstance(request.stripe_account, str)
                else None,
                idempotency_key=key,
                attempts=attempts,
            )
        except StripeFailure as failure:
            return Outcome.failed(failure, attempts)
        return Outcome.completed(response.body, response.request_id, attempts)


def meter_outcome(event: MeterEvent, result: MeterResult, *, with_output: bool = True) -> Outcome:
    """A meter event's result as a reply outcome: counted (now or before) or failed.
    ``with_output=False`` skips building the reply's output (no reply is due)."""
    if result.status == "failed":
        failure = result.failure or StripeFailure(
            ReplyError(type="api_error", message="Stripe refused the meter event"),
            category="api_error",
        )
        return Outcome.failed(failure, Attempts(count=result.attempts))
    return Outcome(
        "COMPLETED",
        output=msgspec.Raw(msgspec.json.encode(event.as_object())) if with_output else None,
        stripe_request_id=result.request_id,
        attempts=result.attempts,
        deduplicated=result.status == "deduplicated",
    )
