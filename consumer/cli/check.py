"""``python -m consumer check``: validate the configuration and reach Kafka; exit non-zero
with the reason (a deployment's pre-start check)."""

from __future__ import annotations

import asyncio
import sys

from consumer.app import kafka_connection
from consumer.kafka.admin import broker_reachable
from consumer.operations import check_complete
from consumer.settings import Settings


def check_command(settings: Settings) -> int:
    """``python -m consumer check``: the operation table is whole and a Kafka broker answers
    (the settings were validated on the way in)."""
    check_complete()
    if not asyncio.run(broker_reachable(kafka_connection(settings))):
        print(f"Kafka not reachable at {settings.kafka_bootstrap_servers}", file=sys.stderr)
        return 1
    print(
        f"ok: Kafka at {settings.kafka_bootstrap_servers}; integrations: "
        f"{', '.join(sorted(settings.credentials))}"
    )
    return 0
