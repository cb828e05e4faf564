"""One canonical log line per request, and the request metrics (count, duration, DLQ)."""

from __future__ import annotations

import logging

from consumer.engine.pipeline.ports import Timing
from consumer.engine.processing.answer import Handled
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics

_log = get_logger()


class RequestLog:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def count(self, operation: str, status: str, seconds: float) -> None:
        self._metrics.requests.labels(operation, status).inc()
        self._metrics.request_duration.labels(operation).observe(seconds)

    def observe(self, handled: Handled, timing: Timing, now: float) -> None:
        seconds = now - timing.received
        status = handled.status if handled.reply is not None else "NO_REPLY"
        self.count(handled.operation or "unknown", status, seconds)
        if handled.dead_letter_reason is not None:
            self._metrics.dlq.labels(handled.dead_letter_reason).inc()
        outcome = handled.outcome
        # One line per request; quiet meter events (thousands a second, no reply asked for)
        # only at DEBUG unless they failed: their metrics tell the story.
        quiet = handled.reply is None and handled.dead_letter is None
        level = logging.DEBUG if quiet and outcome.status == "COMPLETED" else logging.INFO
        if not _log.isEnabledFor(level):
            return
        error = outcome.error
        _log.log(
            level,
            "request",
            extra={
                "operation": handled.operation,
                "status": handled.status,
                "taskId": _text(handled.conductor.taskId),
                "workflowInstanceId": _text(handled.conductor.workflowInstanceId),
                "taskRefName": _text(handled.conductor.taskRefName),
                "idempotency_key": handled.idempotency_key,
                "stripe_request_id": outcome.stripe_request_id,
                "attempts": outcome.attempts,
                "deduplicated": outcome.deduplicated,
                "error_type": error.type if error else None,
                "error_code": (error.decline_code or error.code) if error else None,
                "error_param": error.param if error else None,
                "record": str(handled.coordinates),
                "reply_topic": handled.reply.topic if handled.reply else None,
                "dlq_reason": handled.dead_letter_reason,
                "duration_ms": round(seconds * 1000, 2),
                "queued_ms": round((timing.started - timing.received) * 1000, 2),
                "stripe_ms": round(outcome.stripe_seconds * 1000, 2),
                "reply_ms": round((now - timing.processed) * 1000, 2),
            },
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
