"""The service's :class:`Settings` record and :func:`load_settings`, which reads and validates
every variable once at start-up (its one call is the table of variables, defaults and bounds;
the README documents each)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from consumer.settings.kafka import KafkaSecurity, read_client_settings
from consumer.settings.meter_verdicts import MeterVerdictSettings, read_meter_verdict_settings
from consumer.settings.reader import TOPIC_NAME, EnvironmentReader, SettingsError
from consumer.settings.secret import Secret
from consumer.settings.stripe_credentials import StripeCredential, read_credentials

DEFAULT_STRIPE_API_BASE: Final = "https://api.stripe.com"
# Conductor's KAFKA_PUBLISH + WAIT style gets its replies on `<reply topic>.wait`
# (README "Two producer styles"; consumer/conductor/kafka_publish.py).
WAIT_REPLY_SUFFIX: Final = ".wait"
DEFAULT_STRIPE_METER_EVENTS_BASE: Final = "https://meter-events.stripe.com"
DEFAULT_MAX_RECORD_BYTES: Final = 1_048_576  # CONSUMER_MAX_RECORD_BYTES
# A meter claim's lease is renewed every third of it, and one renewal round of 100 claims on
# a Redis Cluster took 0.36-0.69 s on a loaded machine: at 1 s a round could outlast the
# lease's last two thirds and another replica send the identifier too.
MIN_CLAIM_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, validated. Built only by :func:`load_settings`, which holds the defaults."""

    kafka_bootstrap_servers: str
    kafka_security: KafkaSecurity
    kafka_client_id: str
    kafka_startup_timeout_seconds: float  # how long start-up waits for a broker to answer
    kafka_client_rack: str | None  # KIP-392: fetch from the replica in this rack (zone)
    session_timeout_seconds: float  # the group drops a member silent this long
    heartbeat_interval_seconds: float
    max_poll_interval_seconds: float
    credentials: Mapping[str, StripeCredential]
    stripe_api_base: str
    stripe_meter_events_base: str
    stripe_timeout_seconds: float
    stripe_max_connections: int
    group_id: str
    group_instance_id: (
        str | None
    )  # Kafka static membership (KIP-345): a restart keeps its partitions
    request_topics: tuple[str, ...]
    meter_topic: str
    reply_topic: str
    dlq_topic: str
    meter_errors_topic: str
    reply_topic_pattern: re.Pattern[str]
    meter_replies: bool
    http_host: str
    http_port: int
    max_record_bytes: int
    reply_memory_seconds: float
    reply_memory_entries: int
    log_level: str
    log_format: Literal["json", "text", "auto"]
    max_in_flight: int
    max_buffered: int
    max_buffered_meter_events: int
    commit_interval_seconds: float
    revoke_timeout_seconds: float
    shutdown_grace_seconds: float
    retry_budget_seconds: float
    create_topics: bool
    topic_partitions: int
    topic_replication_factor: int
    stripe_rate_limit: int | None  # None: Stripe's published limit for each key's mode
    stripe_rate_burst: int | None
    replicas: int  # replicas sharing each rate limit: a process's share is limit / replicas
    credential_probe_seconds: float
    credential_hold_seconds: float
    meter_api: Literal["v2_stream", "v1"]
    meter_batch_size: int
    meter_linger_seconds: float
    meter_stream_concurrency: int
    redis_url: Secret | None  # None: shared state (ledger, limit, memories) in process only
    redis_key_prefix: str  # every key this service writes in Redis starts with it
    redis_cluster: bool  # the URL names a node of a Redis Cluster
    meter_ledger_events_per_second: float  # the rate the ledger's Redis layout is sized for
    meter_dedup_window_seconds: float
    meter_claim_seconds: float
    meter_dedup_max_entries: int
    meter_verdicts: MeterVerdictSettings = field(default_factory=MeterVerdictSettings)

    @property
    def consumed_topics(self) -> tuple[str, ...]:
        return (*self.request_topics, self.meter_topic)

    @property
    def wait_reply_topic(self) -> str | None:
        """The KAFKA_PUBLISH + WAIT style's reply topic, when the allow-list lets requests
        name it (created at start-up with the others)."""
        topic = self.reply_topic + WAIT_REPLY_SUFFIX
        return topic if self.reply_topic_allowed(topic) else None

    def reply_topic_allowed(self, topic: str) -> bool:
        """Whether a request may name this reply topic: a Kafka topic name that the allow-list
        matches whole (no configured pattern lets a control character through)."""
        return (
            TOPIC_NAME.fullmatch(topic) is not None
            and topic not in {".", ".."}  # names Kafka refuses
            and self.reply_topic_pattern.fullmatch(topic) is not None
        )


def _default_reply_pattern(reply_topic: str) -> re.Pattern[str]:
    """The configured reply topic itself, or that name followed by `.` and a suffix."""
    return re.compile(rf"{re.escape(reply_topic)}(\.[A-Za-z0-9._-]+)?")


REDIS_URL_VARIABLES: Final = ("CONSUMER_REDIS_URL", "CONSUMER_DEDUP_REDIS_URL")


def _redis_url(reader: EnvironmentReader) -> Secret | None:
    """The Redis of all shared state. `CONSUMER_REDIS_URL`; the older name
    `CONSUMER_DEDUP_REDIS_URL` (when it held only the meter ledger) still works, and the new
    name wins when both are set. A URL may hold a password: kept as a Secret."""
    for name in REDIS_URL_VARIABLES:
        value = reader.raw(name)
        if value is None:
            continue
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise SettingsError(f"{name}: expected redis://host:port/db, rediss://… or unix://…")
        return Secret(value)
    return None


def _redis_key_prefix(reader: EnvironmentReader) -> str:
    value = reader.text("CONSUMER_REDIS_KEY_PREFIX", "stripe-consumer:")
    if not re.fullmatch(r"[A-Za-z0-9:._{}-]{1,100}", value):
        raise SettingsError(
            f"CONSUMER_REDIS_KEY_PREFIX: expected up to 100 of A-Z a-z 0-9 : . _ - {{ }}, "
            f"got {value!r}"
        )
    return value


def _reply_pattern(reader: EnvironmentReader, reply_topic: str) -> re.Pattern[str]:
    """The allow-list of reply topics, matched against the whole name (`fullmatch`)."""
    value = reader.raw("CONSUMER_REPLY_TOPIC_PATTERN")
    if value is None:
        return _default_reply_pattern(reply_topic)
    try:
        return re.compile(value)
    except re.error as exc:
        raise SettingsError(f"CONSUMER_REPLY_TOPIC_PATTERN: not a valid regex ({exc})") from None


def _heartbeat(reader: EnvironmentReader, session: float) -> float:
    """A third of the session timeout (at least 1 s) unless set; below the session timeout."""
    heartbeat = reader.number(
        "CONSUMER_HEARTBEAT_INTERVAL_SECONDS", max(1.0, session / 3), 0.1, 600.0
    )
    if heartbeat >= session:
        raise SettingsError(
            f"CONSUMER_HEARTBEAT_INTERVAL_SECONDS: must be below CONSUMER_SESSION_TIMEOUT_SECONDS "
            f"({session:g}), got {heartbeat:g}"
        )
    return heartbeat


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad variable."""
    reader = EnvironmentReader(environ)
    client = read_client_settings(reader)
    log_format = reader.choice("LOG_FORMAT", "auto", ("json", "text", "auto"))
    max_in_flight = reader.integer("CONSUMER_MAX_IN_FLIGHT", 256, 1, 10_000)
    # The broker's group.min/max.session.timeout.ms bound it (6 s and 30 min by default).
    session = reader.number("CONSUMER_SESSION_TIMEOUT_SECONDS", 10.0, 6.0, 1800.0)
    return Settings(
        kafka_bootstrap_servers=client.kafka_bootstrap_servers,
        credentials=read_credentials(reader),
        stripe_api_base=reader.url("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
        stripe_meter_events_base=reader.url(
            "STRIPE_METER_EVENTS_BASE", DEFAULT_STRIPE_METER_EVENTS_BASE
        ),
        stripe_timeout_seconds=reader.number("STRIPE_TIMEOUT_SECONDS", 30.0, 0.1, 600.0),
        stripe_max_connections=reader.integer("STRIPE_MAX_CONNECTIONS", 256, 1, 10_000),
        group_id=reader.text("CONSUMER_GROUP_ID", "stripe-consumer"),
        group_instance_id=reader.raw("CONSUMER_GROUP_INSTANCE_ID"),
        request_topics=client.request_topics,
        meter_topic=client.meter_topic,
        reply_topic=client.reply_topic,
        dlq_topic=client.dlq_topic,
        meter_errors_topic=client.meter_errors_topic,
        reply_topic_pattern=_reply_pattern(reader, client.reply_topic),
        meter_replies=reader.boolean("CONSUMER_METER_REPLIES", False),
        http_host=reader.text("CONSUMER_HTTP_HOST", "127.0.0.1"),
        http_port=reader.integer("CONSUMER_HTTP_PORT", 8000, 0, 65535),
        max_record_bytes=reader.integer(
            "CONSUMER_MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES, 64, 104_857_600
        ),
        # Conductor republishes a task's record while it is pending (minutes) and retries a
        # failed task after its retry delay (60 s by default): an hour covers both. Each
        # entry holds a Stripe object (about 3 KiB), so 20,000 entries stay near 60 MiB.
        reply_memory_seconds=reader.number(
            "CONSUMER_REPLY_MEMORY_SECONDS", 3_600.0, 0.0, 2_592_000.0
        ),
        reply_memory_entries=reader.integer("CONSUMER_REPLY_MEMORY_ENTRIES", 20_000, 0, 10_000_000),
        log_level=reader.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        log_format=log_format,  # type: ignore[arg-type]  # checked by choice()
        kafka_security=client.kafka_security,
        kafka_client_id=reader.text("KAFKA_CLIENT_ID", "stripe-consumer"),
        # Long enough for a broker started beside the service (compose, a cluster's rollout).
        kafka_startup_timeout_seconds=reader.number(
            "KAFKA_STARTUP_TIMEOUT_SECONDS", 120.0, 0.0, 3600.0
        ),
        kafka_client_rack=reader.raw("KAFKA_CLIENT_RACK"),
        session_timeout_seconds=session,
        heartbeat_interval_seconds=_heartbeat(reader, session),
        # The loop fetches every 0.2 s whatever Stripe's latency (calls run beside it): this
        # only catches a stuck loop, which liveness restarts sooner anyway.
        max_poll_interval_seconds=reader.number(
            "CONSUMER_MAX_POLL_INTERVAL_SECONDS", 300.0, 1.0, 3600.0
        ),
        max_in_flight=max_in_flight,
        max_buffered=reader.integer(
            "CONSUMER_MAX_BUFFERED", max(1000, 4 * max_in_flight), max_in_flight, 1_000_000
        ),
        max_buffered_meter_events=reader.integer(
            "CONSUMER_MAX_BUFFERED_METER_EVENTS", 20_000, 100, 1_000_000
        ),
        commit_interval_seconds=reader.number("CONSUMER_COMMIT_INTERVAL_SECONDS", 1.0, 0.05, 60.0),
        revoke_timeout_seconds=reader.number("CONSUMER_REVOKE_TIMEOUT_SECONDS", 10.0, 0.0, 120.0),
        shutdown_grace_seconds=reader.number("CONSUMER_SHUTDOWN_GRACE_SECONDS", 25.0, 0.0, 3600.0),
        retry_budget_seconds=reader.number("CONSUMER_RETRY_BUDGET_SECONDS", 30.0, 0.0, 3600.0),
        create_topics=reader.boolean("CONSUMER_CREATE_TOPICS", True),
        topic_partitions=reader.integer("CONSUMER_TOPIC_PARTITIONS", 6, 1, 10_000),
        topic_replication_factor=reader.integer("CONSUMER_TOPIC_REPLICATION_FACTOR", 3, 1, 7),
        stripe_rate_limit=reader.optional_integer("STRIPE_RATE_LIMIT", 1, 100_000),
        stripe_rate_burst=reader.optional_integer("STRIPE_RATE_BURST", 1, 100_000),
        replicas=reader.integer("CONSUMER_REPLICAS", 1, 1, 1_000),
        credential_probe_seconds=reader.number(
            "CONSUMER_CREDENTIAL_PROBE_SECONDS", 30.0, 0.1, 3600.0
        ),
        # How long a request waits while Stripe rejects its integration's key (a key rotation
        # must not fail a day of workflows, nor hold an offset for a day); then FAILED.
        credential_hold_seconds=reader.number(
            "CONSUMER_CREDENTIAL_HOLD_SECONDS", 900.0, 0.0, 86_400.0
        ),
        meter_api=reader.choice("CONSUMER_METER_API", "v2_stream", ("v2_stream", "v1")),  # type: ignore[arg-type]  # checked by choice()
        meter_batch_size=reader.integer("CONSUMER_METER_BATCH_SIZE", 100, 1, 100),
        meter_linger_seconds=reader.number("CONSUMER_METER_LINGER_MS", 25.0, 0.0, 5000.0) / 1000,
        meter_stream_concurrency=reader.integer("CONSUMER_METER_STREAM_CONCURRENCY", 8, 1, 256),
        redis_url=_redis_url(reader),
        redis_key_prefix=_redis_key_prefix(reader),
        redis_cluster=reader.boolean("CONSUMER_REDIS_CLUSTER", False),
        meter_ledger_events_per_second=reader.number(
            "CONSUMER_METER_LEDGER_EVENTS_PER_SECOND", 1_000.0, 1.0, 10_000_000.0
        ),
        meter_dedup_window_seconds=reader.number(
            "CONSUMER_METER_DEDUP_WINDOW_SECONDS", 35 * 86_400.0, 60.0, 400 * 86_400.0
        ),
        meter_claim_seconds=reader.number(
            "CONSUMER_METER_CLAIM_SECONDS", 60.0, MIN_CLAIM_SECONDS, 3600.0
        ),
        meter_dedup_max_entries=reader.integer(
            "CONSUMER_METER_DEDUP_MAX_ENTRIES", 200_000, 1_000, 100_000_000
        ),
        meter_verdicts=read_meter_verdict_settings(reader),
    )
