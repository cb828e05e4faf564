"""Per-key scheduling: jobs sharing a key run in order, one at a time; others concurrently.

A job has one key or more: the pipeline gives a request its record key and, for a write to
existing Stripe objects, one key per object it writes (Stripe answers concurrent writes to
one object with 429 `lock_timeout`, so writes to one object go one at a time). Each key with
work has a queue of jobs, in submission order. A job may start when it heads the queue of
every one of its keys: no job sharing a key with it is running or was submitted before it.
Such jobs wait in a ready line; up to ``max_in_flight`` run at once
(``CONSUMER_MAX_IN_FLIGHT``), each as its own task.

A job waiting for its turn costs a queue entry, never a task nor a worker slot: hundreds of
writes to one busy customer wait in that customer's queue while requests for everyone else
run. When a job finishes, the jobs it was holding up whose turn has come join the back of
the ready line, so a busy key cannot starve the others. Submission order is one global
order, so the oldest waiting job always heads all its queues: no two jobs ever wait for each
other.

Each job may name its owner (the pipeline passes the record): ``withdraw`` takes back the
jobs not yet started whose owner is no longer wanted (a rebalance took their partition, or
the service is stopping), so they neither run nor count as queued work.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable

from consumer.observability.logs import get_logger

Job = Callable[[], Awaitable[None]]
_log = get_logger()


class _Entry:
    __slots__ = ("job", "keys", "owner", "state")

    def __init__(self, job: Job, keys: tuple[Hashable, ...], owner: object) -> None:
        self.job = job
        self.keys = keys
        self.owner = owner
        self.state = "waiting"  # waiting -> ready -> running; or withdrawn


class KeyedScheduler:
    def __init__(self, max_in_flight: int) -> None:
        self._max_in_flight = max_in_flight
        self._queues: dict[Hashable, deque[_Entry]] = {}
        self._ready: deque[_Entry] = deque()  # jobs whose turn has come, in order
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

    def submit(
        self, key: Hashable, job: Job, owner: object = None, *, also: Iterable[Hashable] = ()
    ) -> None:
        """Queue ``job`` under ``key`` and the keys ``also`` (the objects it writes)."""
        keys = (key,) if not also else tuple(dict.fromkeys((key, *also)))
        entry = _Entry(job, keys, owner)
        self._queued += 1
        self._idle.clear()
        for k in keys:
            queue = self._queues.get(k)
            if queue is None:
                self._queues[k] = deque((entry,))
            else:
                queue.append(entry)
        self._if_ready(entry)
        self._start_ready()

    def _if_ready(self, entry: _Entry) -> None:
        """Into the ready line if it heads every one of its queues and is not there yet."""
        if entry.state == "waiting" and all(self._queues[k][0] is entry for k in entry.keys):
            entry.state = "ready"
            self._ready.append(entry)

    def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]:
        """Take back the jobs not yet started whose owner is ``unwanted``: they never run.
        Running jobs are left alone. Returns the withdrawn jobs' owners."""
        withdrawn: list[object] = []
        for key, queue in list(self._queues.items()):
            kept: deque[_Entry] = deque()
            for entry in queue:
                if entry.state == "withdrawn" or (
                    entry.state != "running" and unwanted(entry.owner)
                ):
                    if entry.state != "withdrawn":
                        entry.state = "withdrawn"
                        withdrawn.append(entry.owner)
                else:
                    kept.append(entry)
            if kept:
                self._queues[key] = kept
            else:
                del self._queues[key]
        if withdrawn:
            self._ready = deque(e for e in self._ready if e.state == "ready")
            for queue in self._queues.values():  # a withdrawn job may have held others up
                self._if_ready(queue[0])
            self._queued -= len(withdrawn)
            if self._queued == 0:
                self._idle.set()
            self._start_ready()
        return withdrawn

    def _start_ready(self) -> None:
        while self._ready and len(self._tasks) < self._max_in_flight:
            entry = self._ready.popleft()
            entry.state = "running"
            task = asyncio.create_task(self._run(entry))
            self._tasks.add(task)

    async def _run(self, entry: _Entry) -> None:
        try:
            await entry.job()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("a scheduled job raised; continuing with the next")
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._finished(entry)

    def _finished(self, entry: _Entry) -> None:
        if entry.state != "running":  # cancelled: the queues were cleared
            return
        entry.state = "done"
        for key in entry.keys:
            queue = self._queues[key]
            queue.popleft()  # it headed every one of its queues
            if queue:
                self._if_ready(queue[0])
            else:
                del self._queues[key]
        self._queued -= 1
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
        for queue in self._queues.values():
            for entry in queue:
                entry.state = "cancelled"
        self._queues.clear()
        self._ready.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._queued = 0
        self._idle.set()
