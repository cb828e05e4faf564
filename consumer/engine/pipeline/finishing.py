"""Finishing a record once what it produced is delivered. A COMPLETED reply (nothing else
to deliver) joins the sink's batch of this loop turn, and the batch's one acknowledgement
finishes it: no task waits for it, and its job's slot is free at once. Anything else (a
failure reply, a DLQ record, a batch that failed) is delivered, retried or replaced by
:class:`~consumer.engine.pipeline.delivery.Delivery` in a task, then finished. Finished
means: the offset may be committed, and the request's log line and metrics are written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from consumer.engine.pipeline.delivery import Delivery
from consumer.engine.pipeline.in_flight import InFlight
from consumer.engine.pipeline.ports import Timing
from consumer.engine.processing.answer import Handled
from consumer.kafka.records import DeliveryFailed, InboundRecord

Finished = Callable[[InboundRecord, Handled, Timing], None]


class Finishing:
    def __init__(self, delivery: Delivery, work: InFlight[Any], finished: Finished) -> None:
        self._delivery = delivery
        self._work = work  # counts the replies in the sink's batches (``delivering``)
        self._finished = finished
        self._tasks: set[asyncio.Task[None]] = set()

    def later(self, record: InboundRecord, handled: Handled, timing: Timing) -> None:
        """Deliver (batched, or in a task of its own), then finish."""
        if handled.reply is None and handled.dead_letter is None:
            self._finished(record, handled, timing)
        elif not self.soon(record, handled, timing):
            self.in_task(record, handled, timing)

    def soon(self, record: InboundRecord, handled: Handled, timing: Timing) -> bool:
        """A COMPLETED reply joins this turn's batch; its acknowledgement finishes it. False
        (nothing sent) for anything else: deliver it."""

        def acknowledged(failure: DeliveryFailed | None) -> None:
            self._work.delivering -= 1
            if failure is None:
                self._finished(record, handled, timing)
            else:  # its batch failed: alone now, retried (or replaced) until acknowledged
                self.in_task(record, handled, timing)

        if not self._delivery.deliver_soon(handled, acknowledged):
            return False
        self._work.delivering += 1
        return True

    def in_task(self, record: InboundRecord, handled: Handled, timing: Timing) -> None:
        task = asyncio.create_task(self.deliver(record, handled, timing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, record: InboundRecord, handled: Handled, timing: Timing) -> None:
        """Until Kafka acknowledges (then finished), or the pipeline stops (left
        uncommitted: redelivered)."""
        if await self._delivery.deliver(handled):
            self._finished(record, handled, timing)
