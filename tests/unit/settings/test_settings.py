"""Configuration: defaults from the contract; every bad value names its variable; secrets
never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.settings import Secret, SettingsError, load_settings

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "STRIPE_API_KEY": "sk_test_51Secret000Key"}


def test_defaults_follow_the_contract() -> None:
    """Topic names and the reply allow-list default as the contract says."""
    settings = load_settings(BASE)
    assert settings.request_topics == ("stripe.requests",)
    assert (settings.meter_topic, settings.reply_topic, settings.dlq_topic) == (
        "stripe.meter-events",
        "stripe.replies",
        "stripe.dlq",
    )
    assert settings.reply_topic_allowed("stripe.replies")
    assert settings.reply_topic_allowed("stripe.replies.billing")
    assert not settings.reply_topic_allowed("stripe.repliesX")
    assert not settings.reply_topic_allowed("other.topic")
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert settings.consumed_topics == ("stripe.requests", "stripe.meter-events")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS is required"),
        ({"STRIPE_API_KEY": ""}, "STRIPE_API_KEY is required"),
        (
            {"STRIPE_API_KEY": "pk_test_123"},
            "STRIPE_API_KEY: expected a Stripe secret or restricted key",
        ),
        ({"CONSUMER_HTTP_PORT": "http"}, "CONSUMER_HTTP_PORT: expected an integer, got 'http'"),
        (
            {"CONSUMER_HTTP_PORT": "70000"},
            "CONSUMER_HTTP_PORT: expected an integer from 0 to 65535",
        ),
        (
            {"CONSUMER_REQUEST_TOPICS": "a,b c"},
            "CONSUMER_REQUEST_TOPICS: 'b c' is not a valid Kafka topic name",
        ),
        (
            {"CONSUMER_REPLY_TOPIC": "re plies"},
            "CONSUMER_REPLY_TOPIC: 're plies' is not a valid Kafka topic name",
        ),
        ({"STRIPE_API_BASE": "localhost:12111"}, "STRIPE_API_BASE: expected an http(s) URL"),
        (
            {"STRIPE_API_BASE": "http://stripe.internal\nX-Injected: 1"},
            "STRIPE_API_BASE: expected an http(s) URL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KAFKA_SECURITY_PROTOCOL: expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SASL_USERNAME is required: needed with SASL_SSL",
        ),
        ({"CONSUMER_METER_REPLIES": "maybe"}, "CONSUMER_METER_REPLIES: expected true or false"),
        (  # a renewal round can outlast the last two thirds of a shorter lease on a cluster
            {"CONSUMER_METER_CLAIM_SECONDS": "4.9"},
            "CONSUMER_METER_CLAIM_SECONDS: expected a number from 5.0 to 3600.0, got 4.9",
        ),
        ({"CONSUMER_REPLY_TOPIC_PATTERN": "("}, "CONSUMER_REPLY_TOPIC_PATTERN: not a valid regex"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR"),
        (
            {"STRIPE_CREDENTIALS_DIR": "/nonexistent/dir"},
            "STRIPE_CREDENTIALS_DIR: /nonexistent/dir does not exist",
        ),
    ],
)
def test_bad_values_name_the_variable(override: dict[str, str], message: str) -> None:
    """A bad variable fails start-up with a message that starts with its name."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, **override})
    assert str(caught.value).startswith(message)


def test_bad_key_is_never_echoed() -> None:
    """A malformed key is rejected without printing it."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "STRIPE_API_KEY": "sk_tset_REALSECRET"})
    assert "REALSECRET" not in str(caught.value)


def test_credentials_directory_adds_integrations(tmp_path: Path) -> None:
    """One file per integration, as a mounted Kubernetes Secret provides them."""
    (tmp_path / "billing").write_text("sk_live_51Billing\n")
    (tmp_path / "..data").mkdir()  # Kubernetes' own bookkeeping is ignored
    settings = load_settings({**BASE, "STRIPE_CREDENTIALS_DIR": str(tmp_path)})
    assert sorted(settings.credentials) == ["billing", "default"]
    assert settings.credentials["billing"].live_mode is True
    assert settings.credentials["default"].live_mode is False


@pytest.mark.parametrize(
    ("pattern", "allowed", "refused"),
    [
        (None, ["stripe.replies", "stripe.replies.billing"], []),
        ("stripe\\.replies\\.(billing|ledger)", ["stripe.replies.ledger"], ["stripe.replies"]),
        ("^stripe\\.replies\\.billing$", ["stripe.replies.billing"], ["stripe.replies.b"]),
        ("stripe\\..+", ["stripe.x"], ["other.stripe.x", "stripe."]),
        (".*", ["any.topic"], [".", "..", "two words", "x" * 250]),
    ],
)
def test_reply_topic_allow_list_matches_whole_names(
    pattern: str | None, allowed: list[str], refused: list[str]
) -> None:
    """The allow-list (default or configured) matches the whole topic name: a trailing
    newline or anything after the pattern is refused, whatever anchors it was written with."""
    environ = BASE if pattern is None else {**BASE, "CONSUMER_REPLY_TOPIC_PATTERN": pattern}
    settings = load_settings(environ)
    for topic in allowed:
        assert settings.reply_topic_allowed(topic), topic
        refused = [*refused, topic + "\n", topic + "\r\n", topic + "\x00"]
    for topic in refused:
        assert not settings.reply_topic_allowed(topic), topic


@pytest.mark.parametrize(
    ("environ", "wait_topic"),
    [
        ({}, "stripe.replies.wait"),
        ({"CONSUMER_REPLY_TOPIC": "billing.replies"}, "billing.replies.wait"),
        ({"CONSUMER_REPLY_TOPIC_PATTERN": "stripe\\.replies"}, None),
    ],
)
def test_the_wait_reply_topic_is_created_only_where_requests_may_name_it(
    environ: dict[str, str], wait_topic: str | None
) -> None:
    """`<reply topic>.wait` (Conductor's KAFKA_PUBLISH + WAIT style) is among the topics the
    service creates, unless the allow-list refuses it (then no request could use it)."""
    assert load_settings({**BASE, **environ}).wait_reply_topic == wait_topic


@pytest.mark.parametrize("name", ["billing\n", "bill\ning", "billing\t", "billing\r"])
def test_credential_file_names_are_whole_integration_names(tmp_path: Path, name: str) -> None:
    """A key file whose name holds a control character is refused, not configured as an
    integration no request can name."""
    (tmp_path / name).write_text("sk_test_51Billing\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "STRIPE_CREDENTIALS_DIR": str(tmp_path)})
    assert str(caught.value) == (
        f"STRIPE_CREDENTIALS_DIR: file name {name!r} is not a valid integration name "
        "(letters, digits, '_', '.', '-')"
    )


def test_secrets_are_masked_when_printed() -> None:
    """repr/str/f-strings of a Secret and of Settings never show the key."""
    settings = load_settings(BASE)
    assert "sk_test_51Secret000Key" not in repr(settings)
    assert "sk_test_51Secret000Key" not in f"{settings.credentials['default']}"
    assert str(Secret("x")) == "Secret('**********')"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"CONSUMER_REDIS_URL": "redis://shared:6379/0"}, "redis://shared:6379/0"),
        ({"CONSUMER_DEDUP_REDIS_URL": "redis://old:6379/1"}, "redis://old:6379/1"),
        (
            {
                "CONSUMER_REDIS_URL": "redis://shared:6379/0",
                "CONSUMER_DEDUP_REDIS_URL": "redis://old:6379/1",
            },
            "redis://shared:6379/0",
        ),
    ],
)
def test_one_redis_url_for_all_shared_state_with_the_old_name_as_alias(
    environ: dict[str, str], expected: str | None
) -> None:
    """CONSUMER_REDIS_URL holds all shared state; CONSUMER_DEDUP_REDIS_URL still works, and
    the new name wins when both are set."""
    url = load_settings({**BASE, **environ}).redis_url
    assert (url.reveal() if url is not None else None) == expected


@pytest.mark.parametrize("name", ["CONSUMER_REDIS_URL", "CONSUMER_DEDUP_REDIS_URL"])
def test_a_bad_redis_url_names_the_variable_it_came_from(name: str) -> None:
    """Whichever name held it, a malformed URL is reported under that name."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, name: "http://redis:6379"})
    assert str(caught.value).startswith(f"{name}: expected redis://host:port/db")


def test_replicas_default_to_one_and_are_bounded() -> None:
    """CONSUMER_REPLICAS (how many processes share a rate limit) is 1 unless set, at least 1."""
    assert load_settings(BASE).replicas == 1
    assert load_settings({**BASE, "CONSUMER_REPLICAS": "4"}).replicas == 4
    with pytest.raises(SettingsError, match="CONSUMER_REPLICAS: expected an integer from 1"):
        load_settings({**BASE, "CONSUMER_REPLICAS": "0"})
