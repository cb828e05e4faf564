"""A timed-out test's task, left behind in the session's event loop.

Every async test and fixture runs on one event loop for the whole session. A test stopped by
pytest-timeout stays pending in that loop, with the tasks it awaits, and runs on inside the
tests that follow: on clients its fixtures have closed meanwhile (a Redis pool reconnects,
and that connection is never closed), until it ends and its garbage is collected during some
later test, which then fails on an ``unclosed Connection`` ResourceWarning that is not its
own (a fresh-clone CI run: test_known_customers after test_claim_renewal had timed out).
``tests/conftest.py`` cancels it before the test's fixtures are torn down. Only the test's
own task: tasks that fixture-owned clients started during the test are their fixtures' to
stop (cancelling those would break the fixtures' teardown).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


def tasks_running(loop: asyncio.AbstractEventLoop, function: Callable[..., Any]) -> set[Any]:
    """The loop's pending tasks whose coroutine is ``function`` (a test left pending)."""
    if loop.is_closed():
        return set()
    code = getattr(inspect.unwrap(function), "__code__", None)
    return {t for t in asyncio.all_tasks(loop) if getattr(t.get_coro(), "cr_code", None) is code}


def stop_tasks(
    loop: asyncio.AbstractEventLoop,
    tasks: set[Any],
    *,
    timeout_s: float = 30.0,
    round_s: float = 5.0,
) -> list[str]:
    """Cancel ``tasks`` (a task's cancel also cancels the task it awaits) and run the loop
    until they end; the ones still running at the deadline. The cancel is repeated each
    round: one that lands inside a library's own timeout can be lost on Python 3.11."""
    if loop.is_closed() or loop.is_running():
        return sorted(repr(task) for task in tasks)
    pending = set(tasks)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        done, pending = loop.run_until_complete(asyncio.wait(pending, timeout=round_s))
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: the test's failure is reported already
    return sorted(repr(task) for task in pending)
