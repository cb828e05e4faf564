"""Delivering what a record produced: its reply and DLQ record, sent until Kafka acknowledges.

Every reply reaches Kafka here, so this is the one place a failure reply (`FAILED`,
`FAILED_WITH_TERMINAL_ERROR`, whichever path built it: Stripe's refusal, the credential
hold's expiry, a meter batch, an internal error, a rejection, the undeliverable-reply
substitute) is remembered by taskId, before it is sent: a copy of the task arriving after
the workflow read the failure is answered the same, never run.

A reply its topic refuses for good (or, for a custom topic, not soon) is replaced once by a
small failure reply on the default topic; a DLQ record too large for the topic keeps its
head. Anything else is retried with a backoff, until the pipeline stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec

from consumer.contract.meter_errors import MeterErrorRecord
from consumer.engine.pipeline.ports import FailureMemory, Sink
from consumer.engine.processing.answer import Handled
from consumer.engine.replies import Outcome
from consumer.kafka.records import DeliveryFailed, OutboundRecord
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics

_log = get_logger()
_DLQ_TRUNCATED_BYTES: Final = 64 * 1024
_meter_error_code = msgspec.json.Decoder(MeterErrorRecord)


class Delivery:
    def __init__(
        self,
        sink: Sink,
        metrics: ServiceMetrics,
        *,
        reply_topic: str,
        custom_reply_topic_timeout_seconds: float,
        memory: FailureMemory | None = None,
    ) -> None:
        self._sink = sink
        self._memory = memory
        self._metrics = metrics
        self._reply_topic = reply_topic
        self._custom_topic_timeout = custom_reply_topic_timeout_seconds
        self.stopping = False  # set once the pipeline stops: give up instead of retrying

    def deliver_soon(self, handled: Handled, done: Callable[[DeliveryFailed | None], None]) -> bool:
        """The common case without waiting: a COMPLETED reply and nothing else joins the
        sink's batch; ``done(None)`` once Kafka has it, ``done(failure)`` if its batch failed
        (then ``deliver`` it). False for anything else (a failure reply, which is remembered
        first; a DLQ record), and nothing is sent: ``deliver`` it."""
        if (
            handled.reply is None
            or handled.dead_letter is not None
            or handled.meter_error is not None
            or handled.outcome.status != "COMPLETED"
        ):
            return False
        return self._sink.send_soon(handled.reply, done)

    async def deliver(self, handled: Handled) -> bool:
        """Send the reply, DLQ and meter-errors records (if any) until Kafka acknowledges;
        False when stopping first (the offset then stays uncommitted and the record returns)."""
        if handled.dead_letter is None and handled.meter_error is None:  # the common case
            return handled.reply is None or await self._send_reply(handled, handled.reply)
        sends = []
        if handled.dead_letter is not None:
            sends.append(self._send_dead_letter(handled.dead_letter))
        if handled.meter_error is not None:
            sends.append(self._send_meter_error(handled.meter_error))
        if handled.reply is not None:
            sends.append(self._send_reply(handled, handled.reply))
        return all(await asyncio.gather(*sends))

    async def _send_reply(self, handled: Handled, record: OutboundRecord) -> bool:
        started = time.monotonic()
        original = record
        if handled.outcome.status != "COMPLETED":
            await self._remember(handled, handled.outcome)

        async def instead(
            refused: OutboundRecord, failure: DeliveryFailed
        ) -> OutboundRecord | None:
            """A reply its topic will not take (or, for a custom topic, not soon): a small
            failure reply on the default topic instead, once (then it is retried)."""
            custom_topic = refused.topic != self._reply_topic
            waited = time.monotonic() - started > self._custom_topic_timeout
            if refused is not original or (failure.retriable and not (custom_topic and waited)):
                return None
            _log.error(
                "reply undeliverable; sending a failure reply to the default topic",
                extra={"topic": refused.topic, "error": str(failure)},
            )
            outcome = handled.undeliverable_outcome(str(failure))
            await self._remember(handled, outcome)
            return handled.undeliverable(self._reply_topic, outcome)

        return await self._send_until_acknowledged(record, instead)

    async def _remember(self, handled: Handled, outcome: Outcome) -> None:
        """A failure about to be sent as the reply: remembered by taskId first."""
        if self._memory is not None and handled.memory is not None:
            await self._memory.remember_failure(handled.memory, outcome)

    async def _send_meter_error(self, record: OutboundRecord) -> bool:
        """A meter event that did not count, on stripe.meter-errors (and counted by code)."""
        sent = await self._send_until_acknowledged(record, _never_instead)
        if sent:
            code = _meter_error_code.decode(record.value).code
            self._metrics.meter_errors.labels(code).inc()
        return sent

    async def _send_dead_letter(self, record: OutboundRecord) -> bool:
        async def instead(
            refused: OutboundRecord, failure: DeliveryFailed
        ) -> OutboundRecord | None:
            """A record the DLQ refuses for good (too large): keep its head, say so."""
            if failure.retriable or len(refused.value) <= _DLQ_TRUNCATED_BYTES:
                return None
            return OutboundRecord(
                refused.topic,
                refused.key,
                refused.value[:_DLQ_TRUNCATED_BYTES],
                (*refused.headers, ("dlq.truncated", b"true")),
            )

        return await self._send_until_acknowledged(record, instead)

    async def _send_until_acknowledged(
        self,
        record: OutboundRecord,
        instead: Callable[[OutboundRecord, DeliveryFailed], Awaitable[OutboundRecord | None]],
    ) -> bool:
        """Send until Kafka acknowledges; ``instead`` may replace a refused record. False
        when stopping first (the offset then stays uncommitted and the record returns)."""
        attempt = 0
        while True:
            try:
                await self._sink.send(record)
            except DeliveryFailed as failure:
                replacement = await instead(record, failure)
                if replacement is not None:
                    record = replacement
                    continue
                attempt += 1
                if not await self._before_retry(attempt, failure):
                    return False
            else:
                return True

    async def _before_retry(self, attempt: int, failure: DeliveryFailed) -> bool:
        """Back off before sending again; False when stopping (give up, stay uncommitted)."""
        if self.stopping:
            return False
        self._metrics.delivery_retries.inc()
        if attempt == 1 or attempt % 20 == 0:
            _log.warning("Kafka refused a record; retrying", extra={"error": str(failure)})
        await asyncio.sleep(min(5.0, 0.1 * 2 ** min(attempt, 6)))
        return True


async def _never_instead(refused: OutboundRecord, failure: DeliveryFailed) -> None:
    """No other record stands in for one that is refused: it is retried until acknowledged."""
