"""Per-key scheduling: same key in order, different keys concurrently, under a global cap."""

from __future__ import annotations

import asyncio

from consumer.engine.scheduler import KeyedScheduler


async def test_same_key_runs_in_order_one_at_a_time() -> None:
    """Jobs of one key never overlap and finish in submission order."""
    scheduler = KeyedScheduler(max_in_flight=10)
    log: list[str] = []

    def job(name: str, delay: float) -> object:
        async def run() -> None:
            log.append(f"start {name}")
            await asyncio.sleep(delay)
            log.append(f"end {name}")

        return run

    scheduler.submit("k", job("a", 0.03))  # type: ignore[arg-type]
    scheduler.submit("k", job("b", 0.0))  # type: ignore[arg-type]
    scheduler.submit("k", job("c", 0.01))  # type: ignore[arg-type]
    assert await scheduler.wait_idle(2)
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]


async def test_different_keys_run_concurrently_up_to_the_cap() -> None:
    """Many keys run at once, never more than max_in_flight."""
    scheduler = KeyedScheduler(max_in_flight=5)
    running = 0
    peak = 0

    async def job() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    for key in range(40):
        scheduler.submit(key, job)
    assert scheduler.queued == 40
    assert await scheduler.wait_idle(5)
    assert peak == 5
    assert scheduler.queued == 0


async def test_a_slow_key_does_not_block_other_keys() -> None:
    """A retrying (slow) key holds up only itself."""
    scheduler = KeyedScheduler(max_in_flight=4)
    finished: list[str] = []
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()
        finished.append("slow")

    async def fast() -> None:
        finished.append("fast")

    scheduler.submit("slow-key", slow)
    for key in range(3):
        scheduler.submit(key, fast)
    await asyncio.sleep(0.05)
    assert finished == ["fast", "fast", "fast"]
    release.set()
    assert await scheduler.wait_idle(1)


async def test_a_failing_job_does_not_stop_its_key() -> None:
    """An exception in one job is logged; the key's next job still runs."""
    scheduler = KeyedScheduler(max_in_flight=2)
    ran: list[int] = []

    async def bad() -> None:
        raise RuntimeError("boom")

    async def good() -> None:
        ran.append(1)

    scheduler.submit("k", bad)
    scheduler.submit("k", good)
    assert await scheduler.wait_idle(1)
    assert ran == [1]


async def test_cancel_abandons_unfinished_work() -> None:
    """After the grace period, cancel stops everything and reports idle."""
    scheduler = KeyedScheduler(max_in_flight=2)

    async def forever() -> None:
        await asyncio.sleep(3600)

    scheduler.submit("a", forever)
    scheduler.submit("a", forever)
    assert not await scheduler.wait_idle(0.05)
    await scheduler.cancel()
    assert scheduler.queued == 0
    assert await scheduler.wait_idle(0.01)


async def test_withdraw_takes_back_jobs_not_started_and_leaves_running_ones() -> None:
    """Withdrawn jobs never run and stop counting as queued; the running job finishes."""
    scheduler = KeyedScheduler(max_in_flight=2)
    release = asyncio.Event()
    ran: list[str] = []

    def job(name: str) -> object:
        async def run() -> None:
            ran.append(name)
            await release.wait()

        return run

    for key in ("a", "b", "c"):  # a and b start (the cap), c waits for a slot
        for n in range(3):
            scheduler.submit(key, job(f"{key}{n}"), owner=f"{key}{n}")  # type: ignore[arg-type]
    await asyncio.sleep(0)  # let the started tasks begin
    assert ran == ["a0", "b0"]
    withdrawn = scheduler.withdraw(lambda owner: not str(owner).startswith("b"))
    assert sorted(map(str, withdrawn)) == ["a1", "a2", "c0", "c1", "c2"]
    assert scheduler.queued == 1 + 3  # a0 (running) and b's three
    release.set()
    assert await scheduler.wait_idle(2)
    assert ran == ["a0", "b0", "b1", "b2"]
    assert scheduler.queued == 0


async def test_jobs_sharing_an_object_key_run_one_at_a_time_in_order() -> None:
    """Two records (different record keys) writing one object: never at once, in order;
    a record writing another object runs beside them."""
    scheduler = KeyedScheduler(max_in_flight=10)
    log: list[str] = []

    def job(name: str) -> object:
        async def run() -> None:
            log.append(f"start {name}")
            await asyncio.sleep(0.02)
            log.append(f"end {name}")

        return run

    scheduler.submit("r1", job("a"), also=["cus_1"])  # type: ignore[arg-type]
    scheduler.submit("r2", job("b"), also=["cus_1"])  # type: ignore[arg-type]
    scheduler.submit("r3", job("c"), also=["cus_2"])  # type: ignore[arg-type]
    assert await scheduler.wait_idle(2)
    assert log.index("end a") < log.index("start b")
    assert log.index("start c") < log.index("end a")  # the other object did not wait


async def test_writes_waiting_for_a_busy_object_hold_no_worker_slot() -> None:
    """Fifty writes to one object wait for it without taking a slot: with two slots, twenty
    ordinary jobs submitted after them all finish while the first write still runs."""
    scheduler = KeyedScheduler(max_in_flight=2)
    release = asyncio.Event()
    ordinary: list[int] = []

    async def hot() -> None:
        await release.wait()

    def plain(i: int) -> object:
        async def run() -> None:
            ordinary.append(i)

        return run

    for i in range(50):
        scheduler.submit(f"hot-{i}", hot, also=["cus_hot"])
    for i in range(20):
        scheduler.submit(f"other-{i}", plain(i))  # type: ignore[arg-type]
    for _ in range(200):
        if len(ordinary) == 20:
            break
        await asyncio.sleep(0.005)
    assert sorted(ordinary) == list(range(20))
    assert scheduler.running == 1  # the first hot write only
    assert scheduler.queued == 50
    release.set()
    assert await scheduler.wait_idle(5)


async def test_withdrawing_a_job_lets_the_one_it_held_up_run() -> None:
    """A queued write withdrawn: the next write to that object (another owner) runs after
    the running one, and the withdrawn job never runs."""
    scheduler = KeyedScheduler(max_in_flight=4)
    release = asyncio.Event()
    ran: list[str] = []

    def job(name: str, wait: bool = False) -> object:
        async def run() -> None:
            ran.append(name)
            if wait:
                await release.wait()

        return run

    scheduler.submit("r1", job("first", wait=True), "keep", also=["obj"])  # type: ignore[arg-type]
    scheduler.submit("r2", job("gone"), "drop", also=["obj"])  # type: ignore[arg-type]
    scheduler.submit("r2", job("same-record"), "keep")  # type: ignore[arg-type]
    scheduler.submit("r3", job("second"), "keep", also=["obj"])  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert scheduler.withdraw(lambda owner: owner == "drop") == ["drop"]
    await asyncio.sleep(0.01)
    assert ran == ["first", "same-record"]  # r2's next job no longer waits behind "gone"
    release.set()
    assert await scheduler.wait_idle(2)
    assert ran == ["first", "same-record", "second"]
    assert scheduler.queued == 0
