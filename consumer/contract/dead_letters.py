"""The dead-letter record's headers: where a record came from, why it is there, and how many
times it was replayed (the service writes them; ``python -m consumer dlq`` reads them).

- ``dlq.source.topic``, ``dlq.source.partition``, ``dlq.source.offset``: where it arrived;
- ``dlq.reason`` (e.g. ``not_json``, ``refused``, ``internal_error``), ``dlq.detail``;
- ``dlq.truncated: true`` when the value was cut to fit the DLQ (it cannot be replayed);
- ``dlq.replayed-from`` (one per replay, oldest first): the DLQ record a replay copied,
  as ``topic:partition:offset``;
- ``dlq.replay-count``: how many times the record has been replayed; a replay adds one,
  and a record that fails again carries it back into the DLQ.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

SOURCE_TOPIC: Final = "dlq.source.topic"
SOURCE_PARTITION: Final = "dlq.source.partition"
SOURCE_OFFSET: Final = "dlq.source.offset"
REASON: Final = "dlq.reason"
DETAIL: Final = "dlq.detail"
TRUNCATED: Final = "dlq.truncated"
REPLAYED_FROM: Final = "dlq.replayed-from"
REPLAY_COUNT: Final = "dlq.replay-count"
PREFIX: Final = "dlq."


def replay_count(headers: Iterable[tuple[str, bytes]]) -> int:
    """The record's replay count (0 when it has none, or one that is not a small number)."""
    count = 0
    for name, value in headers:
        if name == REPLAY_COUNT:
            text = value.decode("ascii", "replace").strip()
            count = int(text) if text.isdigit() and len(text) < 10 else 0
    return count


def is_history(name: str) -> bool:
    """A header that travels with a replayed record: anything not ``dlq.``, and the replay
    trail (``dlq.replayed-from``); the rest is one DLQ visit's provenance."""
    return not name.startswith(PREFIX) or name == REPLAYED_FROM
