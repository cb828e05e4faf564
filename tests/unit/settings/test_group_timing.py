"""The consumer group's timing settings and rack: defaults, bounds, the heartbeat below
the session timeout."""

from __future__ import annotations

import pytest

from consumer.settings import SettingsError, load_settings

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "STRIPE_API_KEY": "sk_test_123"}


def test_defaults_keep_the_heartbeat_a_third_of_the_session() -> None:
    """10 s session, 3.3 s heartbeat, 300 s poll interval, no rack: as before the settings."""
    settings = load_settings(BASE)
    assert settings.session_timeout_seconds == 10.0
    assert settings.heartbeat_interval_seconds == pytest.approx(10 / 3)
    assert settings.max_poll_interval_seconds == 300.0
    assert settings.kafka_client_rack is None


def test_a_longer_session_moves_the_default_heartbeat() -> None:
    """45 s session (static membership over a restart): 15 s heartbeat; a rack is kept."""
    settings = load_settings(
        {**BASE, "CONSUMER_SESSION_TIMEOUT_SECONDS": "45", "KAFKA_CLIENT_RACK": "eu-west-1a"}
    )
    assert settings.heartbeat_interval_seconds == 15.0
    assert settings.kafka_client_rack == "eu-west-1a"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CONSUMER_SESSION_TIMEOUT_SECONDS": "3"}, "CONSUMER_SESSION_TIMEOUT_SECONDS"),
        (
            {"CONSUMER_SESSION_TIMEOUT_SECONDS": "10", "CONSUMER_HEARTBEAT_INTERVAL_SECONDS": "10"},
            "CONSUMER_HEARTBEAT_INTERVAL_SECONDS: must be below",
        ),
        ({"CONSUMER_MAX_POLL_INTERVAL_SECONDS": "0"}, "CONSUMER_MAX_POLL_INTERVAL_SECONDS"),
    ],
)
def test_out_of_bounds_timing_names_the_variable(environ: dict[str, str], named: str) -> None:
    """A session below the brokers' minimum, a heartbeat not below the session, a zero poll
    interval: refused at start-up, naming the variable."""
    with pytest.raises(SettingsError, match=named):
        load_settings({**BASE, **environ})
