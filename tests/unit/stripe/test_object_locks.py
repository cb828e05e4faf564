"""Writes to one Stripe object never overlap; different objects do; no lock leaks."""

from __future__ import annotations

import asyncio

from consumer.stripe.object_locks import ObjectLocks


async def test_writes_to_one_object_are_serialised() -> None:
    """Two holders of the same object never run at once."""
    locks = ObjectLocks()
    active = 0
    peak = 0

    async def write(keys: list[str]) -> None:
        nonlocal active, peak
        async with locks.holding(keys):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    await asyncio.gather(*(write(["cus_1"]) for _ in range(5)))
    assert peak == 1
    assert len(locks) == 0


async def test_different_objects_run_concurrently() -> None:
    """Locks on different objects do not wait for each other."""
    locks = ObjectLocks()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.holding(["cus_1"]):
            inside.set()
            await release.wait()

    task = asyncio.create_task(first())
    await inside.wait()
    async with locks.holding(["cus_2"]):
        pass
    release.set()
    await task


async def test_overlapping_sets_do_not_deadlock() -> None:
    """Locks are taken in one order, so {a, b} and {b, a} cannot deadlock."""
    locks = ObjectLocks()

    async def hold(keys: list[str]) -> None:
        async with locks.holding(keys):
            await asyncio.sleep(0.005)

    await asyncio.wait_for(
        asyncio.gather(
            *(hold(["pm_1", "cus_1"] if i % 2 else ["cus_1", "pm_1"]) for i in range(20))
        ),
        2,
    )
    assert len(locks) == 0
