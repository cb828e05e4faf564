"""The one duration syntax of `dlq --since` and `reconcile --since`."""

from __future__ import annotations

import pytest

from consumer.cli.dead_letters import parse_time
from consumer.cli.durations import parse_duration
from consumer.cli.reconcile import parse_since


def test_a_duration_is_a_whole_number_and_a_unit() -> None:
    """`90s`, `30m`, `6h`, `2d` in seconds (spaces around allowed); anything else is none."""
    assert [parse_duration(t) for t in ("90s", "30m", " 6h ", "2d")] == [90, 1800, 21600, 172800]
    assert [parse_duration(t) for t in ("yesterday", "1.5h", "2w", "h", "-1h", "6h ago")] == [
        None
    ] * 6


def test_both_commands_read_the_same_durations() -> None:
    """`reconcile --since 2d` and `dlq --since 2d` mean the same span; a bad one names the
    option."""
    assert parse_since("2d") == 10_000_000.0 - parse_time("2d", now=10_000_000.0)
    with pytest.raises(ValueError, match="--since: expected a duration"):
        parse_since("yesterday")
