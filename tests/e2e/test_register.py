"""`conductor register` returns only once the real Conductor listens to the reply topic (it
adds a new handler's queue at its next refresh, every 60 s), so the first workflow a user
starts afterwards is not left waiting for Conductor to subscribe."""

from __future__ import annotations

import argparse
import asyncio
import time

import pytest

from consumer.conductor.client import ConductorClient
from consumer.conductor.commands import run
from tests.support.service import Topics

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_register_returns_once_conductor_listens(
    conductor_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Handlers for a reply topic Conductor has never seen: register blocks until
    GET /api/admin/queues lists the topic's event, and says how long it waited."""
    topics = Topics()
    event = f"kafka:{topics.replies}"
    client = ConductorClient(conductor_url)
    assert event not in client.listened_events()
    args = argparse.Namespace(
        conductor_command="register", url=conductor_url, request_topic=topics.requests,
        reply_topic=topics.replies, no_examples=True, handler_suffix=f"_{topics.prefix}",
        wait_seconds=120.0,
    )  # fmt: skip
    began = time.monotonic()
    assert await asyncio.to_thread(run, args) == 0
    took = time.monotonic() - began
    assert event in client.listened_events()
    out = capsys.readouterr().out
    [waiting] = [line for line in out.splitlines() if line.startswith("waiting for Conductor")]
    assert event in waiting  # with the handlers' other events, if any
    assert "Conductor listens to it (" in out
    print(f"register waited {took:.1f} s for Conductor to listen")  # noqa: T201 (README figure)
