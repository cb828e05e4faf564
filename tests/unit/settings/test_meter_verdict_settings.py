"""The settings of Stripe's verdict on meter events are read from the environment, with the
defaults the README documents, and bad values refused naming the variable."""

from __future__ import annotations

import pytest

from consumer.settings import SettingsError, load_settings

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "STRIPE_API_KEY": "sk_test_51Verdicts"}


def test_defaults_are_the_documented_ones() -> None:
    """Poller on (60 s, 24 h back); pre-validation, known customers, periodic reconcile off."""
    verdicts = load_settings(BASE).meter_verdicts
    assert (verdicts.poll_seconds, verdicts.lookback_hours) == (60.0, 24.0)
    assert verdicts.meters_refresh_seconds == 0.0
    assert verdicts.known_customers_seconds == 0.0
    assert verdicts.reconcile_every_seconds == 0.0
    assert (verdicts.reconcile_since_hours, verdicts.reconcile_tolerance) == (6.0, 0.0)


def test_every_documented_variable_is_read() -> None:
    """CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS and the three CONSUMER_RECONCILE_* variables
    reach the settings (the periodic reconcile can be switched on)."""
    verdicts = load_settings(
        {
            **BASE,
            "CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS": "21600",
            "CONSUMER_RECONCILE_EVERY_SECONDS": "900",
            "CONSUMER_RECONCILE_SINCE_HOURS": "12",
            "CONSUMER_RECONCILE_TOLERANCE": "2.5",
        }
    ).meter_verdicts
    assert verdicts.known_customers_seconds == 21600.0
    assert verdicts.reconcile_every_seconds == 900.0
    assert verdicts.reconcile_since_hours == 12.0
    assert verdicts.reconcile_tolerance == 2.5


@pytest.mark.parametrize(
    "variable",
    [
        "CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS",
        "CONSUMER_RECONCILE_EVERY_SECONDS",
        "CONSUMER_RECONCILE_SINCE_HOURS",
        "CONSUMER_RECONCILE_TOLERANCE",
    ],
)
def test_a_negative_value_is_refused_naming_the_variable(variable: str) -> None:
    """-1 is no interval, no window, no tolerance: start-up fails naming the variable."""
    with pytest.raises(SettingsError, match=variable):
        load_settings({**BASE, variable: "-1"})
