"""The bench's rate arithmetic on short runs: a quick run (`--scale 0.1`, as its help
suggests) finishes within the warm-up second or within one sample."""

from __future__ import annotations

import math

from bench.harness import steady_rate
from bench.scenarios.metering import delivery_rate


def test_a_run_shorter_than_the_warm_up_second_is_rated_whole() -> None:
    """Scenario (a) at --scale 0.1 answers within its first second: the rate without that
    second had no replies left and the run crashed (IndexError); it is rated whole."""
    assert steady_rate([100.0, 100.2, 100.4, 100.5]) == 3 / 0.5


def test_a_longer_run_is_rated_without_its_warm_up_second() -> None:
    """Replies in the first second (the connection pool's warm-up) do not count."""
    assert steady_rate([0.0, 0.1, 0.2, 1.0, 2.0, 3.0]) == 2 / 2.0


def test_meter_events_delivered_within_one_sample_have_no_rate() -> None:
    """All events delivered before the second sample: no span to divide by (the run
    crashed with ZeroDivisionError); the rate is NaN, not invented."""
    assert math.isnan(delivery_rate([(1.0, 0), (1.5, 1000)]))


def test_meter_events_are_rated_from_the_first_sample_with_deliveries() -> None:
    """The steady rate runs from the first sample that saw deliveries to the last."""
    assert delivery_rate([(0.0, 0), (0.5, 100), (1.0, 600), (1.5, 1100)]) == 1000 / 1.0
