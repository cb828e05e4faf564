"""Per-key scheduling: records with the same key run in order, different keys concurrently.

Each key with work has one worker task that runs its jobs one after another; a global
semaphore caps how many jobs run at once across all keys (``CONSUMER_MAX_IN_FLIGHT``). Jobs
queued behind a running job of the same key wait without holding a slot, so a key whose
request is retrying holds up only itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

from consumer.logs import get_logger

Job = Callable[[], Awaitable[None]]
_log = get_logger()


class KeyedScheduler:
    def __init__(self, max_in_flight: int) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queues: dict[Hashable, deque[Job]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._queued = 0
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queued(self) -> int:
        """Jobs submitted and not finished (running or waiting)."""
        return self._queued

    @property
    def running(self) -> int:
        return self._running

    def submit(self, key: Hashable, job: Job) -> None:
        self._queued += 1
        self._idle.clear()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = deque((job,))
        worker = asyncio.create_task(self._work(key), name=f"key-worker:{key!r}"[:80])
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _work(self, key: Hashable) -> None:
        queue = self._queues[key]
        while queue:
            job = queue[0]
            try:
                async with self._slots:
                    self._running += 1
                    try:
                        await job()
                    finally:
                        self._running -= 1
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("a scheduled job raised; continuing with the next")
            finally:
                queue.popleft()
                self._queued -= 1
                if self._queued == 0:
                    self._idle.set()
        del self._queues[key]

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is queued or running; False if the timeout came first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def cancel(self) -> None:
        """Stop every worker (shutdown after the grace period): unfinished jobs are abandoned,
        their offsets stay uncommitted, and Kafka redelivers them."""
        for worker in list(self._workers):
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._queues.clear()
        self._queued = 0
        self._idle.set()
