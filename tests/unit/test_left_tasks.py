"""A failed test's tasks are stopped before its fixtures are torn down (tests/conftest.py,
tests/support/left_tasks.py), so they cannot run on inside, and fail, the tests after it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.left_tasks import stop_tasks

ROOT = Path(__file__).resolve().parents[2]
TIMED_OUT_THEN_NEXT = """
import asyncio

import pytest

order = []


@pytest.fixture
def resource():
    yield
    order.append("fixture torn down")


@pytest.mark.timeout(1)
async def test_hangs(resource):
    async def renewing():
        try:
            await asyncio.sleep(3600)
        finally:
            order.append("task stopped")

    await asyncio.create_task(renewing())


def test_next():
    assert order == ["task stopped", "fixture torn down"]
"""


def test_a_timed_out_tests_task_stops_before_its_fixtures_are_torn_down(tmp_path: Path) -> None:
    """pytest-timeout stops a test awaiting a task that never ends: the task is cancelled
    (its finally runs) before the fixture's teardown, not left to run in the next tests."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(TIMED_OUT_THEN_NEXT))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", "/dev/null", "--rootdir", str(tmp_path), "-o", "asyncio_mode=auto",
         "-o", "asyncio_default_fixture_loop_scope=session",
         "-o", "asyncio_default_test_loop_scope=session", "-q", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    assert "FAILED" in run.stdout
    assert "test_inner.py::test_hangs" in run.stdout


def test_a_lost_cancel_is_repeated_and_other_tasks_are_left_alone() -> None:
    """A task that swallows its first cancel is cancelled again until it ends; another task
    of the loop is not touched."""
    loop = asyncio.new_event_loop()
    try:
        earlier = loop.create_task(asyncio.sleep(3600))

        async def stubborn() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)  # the first cancel lost, as inside a timeout
            await asyncio.sleep(3600)

        task = loop.create_task(stubborn())
        assert stop_tasks(loop, {task}, timeout_s=30, round_s=0.2) == []
        assert task.cancelled()
        assert not earlier.done()
        earlier.cancel()
        loop.run_until_complete(asyncio.gather(earlier, return_exceptions=True))
    finally:
        loop.close()
