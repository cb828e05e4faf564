"""Per-key scheduling: records with the same key run in order, different keys concurrently.

Each key with work has a queue of jobs. Keys whose next job may start wait in a ready line;
up to ``max_in_flight`` jobs run at once (``CONSUMER_MAX_IN_FLIGHT``), each as its own task.
When a job finishes, its key goes to the back of the line if it has more work, so a busy key
cannot starve the others, and a key whose request is retrying holds up only itself. Jobs
that are waiting cost a queue entry, not a task.

Each job may name its owner (the pipeline passes the record): ``withdraw`` takes back the
jobs not yet started whose owner is no longer wanted (a rebalance took their partition, or
the service is stopping), so they neither run nor count as queued work.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeAlias

from consumer.observability.logs import get_logger

Job = Callable[[], Awaitable[None]]
_Entry: TypeAlias = tuple[Job, object]  # the job and its owner
_log = get_logger()


class KeyedScheduler:
    def __init__(self, max_in_flight: int) -> None:
        self._max_in_flight = max_in_flight
        self._queues: dict[Hashable, deque[_Entry]] = {}
        self._ready: deque[Hashable] = deque()  # keys whose next job may start
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queued(self) -> int:
        """Jobs submitted and not finished (running or waiting)."""
        return self._queued

    @property
    def running(self) -> int:
        return len(self._tasks)

    def submit(self, key: Hashable, job: Job, owner: object = None) -> None:
        self._queued += 1
        self._idle.clear()
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque(((job, owner),))
            self._ready.append(key)
            self._start_ready()
        else:
            queue.append((job, owner))  # the key is running or already in line

    def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]:
        """Take back the jobs not yet started whose owner is ``unwanted``: they never run.
        Running jobs are left alone. Returns the withdrawn jobs' owners."""
        waiting = set(self._ready)  # keys whose head job has not started
        withdrawn: list[object] = []
        for key, queue in list(self._queues.items()):
            running = () if key in waiting else (queue.popleft(),)
            kept = deque(running)
            for entry in queue:
                if unwanted(entry[1]):
                    withdrawn.append(entry[1])
                else:
                    kept.append(entry)
            if kept:
                self._queues[key] = kept
            else:
                del self._queues[key]
        if withdrawn:
            self._ready = deque(key for key in self._ready if key in self._queues)
            self._queued -= len(withdrawn)
            if self._queued == 0:
                self._idle.set()
        return withdrawn

    def _start_ready(self) -> None:
        while self._ready and len(self._tasks) < self._max_in_flight:
            key = self._ready.popleft()
            task = asyncio.create_task(self._run(key, self._queues[key][0][0]))
            self._tasks.add(task)

    async def _run(self, key: Hashable, job: Job) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("a scheduled job raised; continuing with the next")
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._finished(key)

    def _finished(self, key: Hashable) -> None:
        queue = self._queues.get(key)
        if queue is None:  # cancelled: the queues were cleared
            return
        queue.popleft()
        self._queued -= 1
        if queue:
            self._ready.append(key)
        else:
            del self._queues[key]
        if self._queued == 0:
            self._idle.set()
        self._start_ready()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is queued or running; False if the timeout came first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def cancel(self) -> None:
        """Stop everything (shutdown after the grace period): unfinished jobs are abandoned,
        their offsets stay uncommitted, and Kafka redelivers them."""
        self._queues.clear()
        self._ready.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._queued = 0
        self._idle.set()
