"""Session-wide fixtures: the real local stack (Kafka + stripe-mock) and the Stripe stand-in,
started once and only when a test asks for them (unit tests start nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import StandIn, local_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with local_stack(tmp_path_factory.mktemp("stack")) as env:
        yield env


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    process = StandIn(Path(tmp_path_factory.mktemp("standin")) / "standin.log")
    try:
        yield process
    finally:
        process.close()
