"""Configuration: the only module that reads the environment.

Every setting comes from a mapping (``os.environ`` in production, a plain dict in tests) and
is validated once at start-up. A bad value raises :class:`SettingsError` naming the variable,
so the process fails fast with a message an operator can act on.

Secrets (Stripe keys, Kafka passwords) are wrapped in :class:`Secret`, whose ``repr`` and
``str`` are masked; only the Stripe gateway and the Kafka client factory call ``reveal()``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

DEFAULT_STRIPE_API_BASE: Final = "https://api.stripe.com"
DEFAULT_STRIPE_METER_EVENTS_BASE: Final = "https://meter-events.stripe.com"
DEFAULT_INTEGRATION: Final = "default"

# Every pattern here is used with `fullmatch`: `re.match` with `$` also accepts a trailing
# newline (`stripe.replies\n`).
_INTEGRATION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_STRIPE_SECRET_KEY = re.compile(r"(sk|rk)_(test|live)_\S+")
_HTTP_URL = re.compile(r"https?://[^\s/\x00-\x1f\x7f]+(/[^\s\x00-\x1f\x7f]*)?")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Secret:
    """A string that never prints itself: ``repr``/``str``/f-strings show a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class StripeCredential:
    """One named Stripe credential (Orkes calls these integrations)."""

    integration: str
    api_key: Secret

    @property
    def live_mode(self) -> bool:
        return self.api_key.reveal().split("_", 2)[1:2] == ["live"]


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: Secret | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, validated. Built only by :func:`load_settings`, which holds the defaults."""

    kafka_bootstrap_servers: str
    kafka_security: KafkaSecurity
    kafka_client_id: str
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
    meter_dedup_window_seconds: float
    meter_claim_seconds: float
    meter_dedup_max_entries: int

    @property
    def consumed_topics(self) -> tuple[str, ...]:
        return (*self.request_topics, self.meter_topic)

    def reply_topic_allowed(self, topic: str) -> bool:
        """Whether a request may name this reply topic: a Kafka topic name that the allow-list
        matches whole (no configured pattern lets a control character through)."""
        return (
            _TOPIC_NAME.fullmatch(topic) is not None
            and topic not in {".", ".."}  # names Kafka refuses
            and self.reply_topic_pattern.fullmatch(topic) is not None
        )


def _default_reply_pattern(reply_topic: str) -> re.Pattern[str]:
    """The configured reply topic itself, or that name followed by `.` and a suffix."""
    return re.compile(rf"{re.escape(reply_topic)}(\.[A-Za-z0-9._-]+)?")


class _Reader:
    """Typed access to one environment mapping; every error names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def required(self, name: str, hint: str) -> str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(f"{name} is required: {hint}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}: expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"{name}: expected an integer from {low} to {high}, got {number}")
        return number

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        if self.raw(name) is None:
            return None
        return self.integer(name, low, low, high)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"{name}: expected a number from {low} to {high}, got {number}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {value!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def topic(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not _TOPIC_NAME.fullmatch(value):
            raise SettingsError(f"{name}: {value!r} is not a valid Kafka topic name")
        return value

    def topics(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        names = tuple(part.strip() for part in value.split(",") if part.strip())
        if not names:
            raise SettingsError(f"{name}: expected a comma-separated list of topics")
        for topic in names:
            if not _TOPIC_NAME.fullmatch(topic):
                raise SettingsError(f"{name}: {topic!r} is not a valid Kafka topic name")
        return names

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.exists():
            raise SettingsError(f"{name}: {value} does not exist")
        return path

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default).rstrip("/")
        if not _HTTP_URL.fullmatch(value):
            raise SettingsError(f"{name}: expected an http(s) URL, got {value!r}")
        return value


def _stripe_key(variable: str, value: str) -> Secret:
    if not _STRIPE_SECRET_KEY.fullmatch(value):
        # Never echo the value: it may be a real key with a typo.
        raise SettingsError(
            f"{variable}: expected a Stripe secret or restricted key "
            "(sk_test_…, sk_live_…, rk_test_…, rk_live_…)"
        )
    return Secret(value)


def _read_credentials(reader: _Reader) -> dict[str, StripeCredential]:
    """`STRIPE_API_KEY` is the `default` integration; `STRIPE_CREDENTIALS_DIR` adds more.

    The directory holds one file per integration, named after it, containing the key: the
    shape of a Kubernetes Secret mounted as a volume. A file named `default` replaces
    `STRIPE_API_KEY`.
    """
    credentials: dict[str, StripeCredential] = {}
    key = reader.raw("STRIPE_API_KEY")
    if key is not None:
        credentials[DEFAULT_INTEGRATION] = StripeCredential(
            DEFAULT_INTEGRATION, _stripe_key("STRIPE_API_KEY", key)
        )
    directory = reader.path("STRIPE_CREDENTIALS_DIR")
    if directory is not None:
        if not directory.is_dir():
            raise SettingsError(f"STRIPE_CREDENTIALS_DIR: {directory} is not a directory")
        for entry in sorted(directory.iterdir()):
            # Kubernetes mounts keep their real files behind `..data` links; skip those names.
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if not _INTEGRATION_NAME.fullmatch(entry.name):
                raise SettingsError(
                    f"STRIPE_CREDENTIALS_DIR: file name {entry.name!r} is not a valid "
                    "integration name (letters, digits, '_', '.', '-')"
                )
            variable = f"STRIPE_CREDENTIALS_DIR/{entry.name}"
            secret = _stripe_key(variable, entry.read_text(encoding="utf-8").strip())
            credentials[entry.name] = StripeCredential(entry.name, secret)
    if DEFAULT_INTEGRATION not in credentials:
        raise SettingsError(
            "STRIPE_API_KEY is required (or a file named 'default' in STRIPE_CREDENTIALS_DIR)"
        )
    return credentials


def _read_kafka_security(reader: _Reader) -> KafkaSecurity:
    protocol = reader.choice(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    )
    mechanism: str | None = None
    username: str | None = None
    password: Secret | None = None
    if protocol.startswith("SASL"):
        mechanism = reader.choice(
            "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        )
        username = reader.required("KAFKA_SASL_USERNAME", f"needed with {protocol}")
        password = Secret(reader.required("KAFKA_SASL_PASSWORD", f"needed with {protocol}"))
    key_password = reader.raw("KAFKA_SSL_KEY_PASSWORD")
    return KafkaSecurity(
        protocol=protocol,  # type: ignore[arg-type]  # checked by choice()
        sasl_mechanism=mechanism,  # type: ignore[arg-type]  # checked by choice()
        sasl_username=username,
        sasl_password=password,
        ssl_ca_file=reader.path("KAFKA_SSL_CA_FILE"),
        ssl_cert_file=reader.path("KAFKA_SSL_CERT_FILE"),
        ssl_key_file=reader.path("KAFKA_SSL_KEY_FILE"),
        ssl_key_password=Secret(key_password) if key_password else None,
    )


REDIS_URL_VARIABLES: Final = ("CONSUMER_REDIS_URL", "CONSUMER_DEDUP_REDIS_URL")


def _redis_url(reader: _Reader) -> Secret | None:
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


def _redis_key_prefix(reader: _Reader) -> str:
    value = reader.text("CONSUMER_REDIS_KEY_PREFIX", "stripe-consumer:")
    if not re.fullmatch(r"[A-Za-z0-9:._{}-]{1,100}", value):
        raise SettingsError(
            f"CONSUMER_REDIS_KEY_PREFIX: expected up to 100 of A-Z a-z 0-9 : . _ - {{ }}, "
            f"got {value!r}"
        )
    return value


def _reply_pattern(reader: _Reader, reply_topic: str) -> re.Pattern[str]:
    """The allow-list of reply topics, matched against the whole name (`fullmatch`)."""
    value = reader.raw("CONSUMER_REPLY_TOPIC_PATTERN")
    if value is None:
        return _default_reply_pattern(reply_topic)
    try:
        return re.compile(value)
    except re.error as exc:
        raise SettingsError(f"CONSUMER_REPLY_TOPIC_PATTERN: not a valid regex ({exc})") from None


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What a producer of requests needs (the demo, ``send``, tests): Kafka and the topics."""

    kafka_bootstrap_servers: str
    kafka_security: KafkaSecurity
    request_topics: tuple[str, ...]
    meter_topic: str
    reply_topic: str
    dlq_topic: str


def _read_client_settings(reader: _Reader) -> ClientSettings:
    return ClientSettings(
        kafka_bootstrap_servers=reader.required(
            "KAFKA_BOOTSTRAP_SERVERS", "comma-separated host:port list of Kafka brokers"
        ),
        kafka_security=_read_kafka_security(reader),
        request_topics=reader.topics("CONSUMER_REQUEST_TOPICS", ("stripe.requests",)),
        meter_topic=reader.topic("CONSUMER_METER_TOPIC", "stripe.meter-events"),
        reply_topic=reader.topic("CONSUMER_REPLY_TOPIC", "stripe.replies"),
        dlq_topic=reader.topic("CONSUMER_DLQ_TOPIC", "stripe.dlq"),
    )


def load_client_settings(environ: Mapping[str, str]) -> ClientSettings:
    return _read_client_settings(_Reader(environ))


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad variable."""
    reader = _Reader(environ)
    client = _read_client_settings(reader)
    log_format = reader.choice("LOG_FORMAT", "auto", ("json", "text", "auto"))
    max_in_flight = reader.integer("CONSUMER_MAX_IN_FLIGHT", 256, 1, 10_000)
    return Settings(
        kafka_bootstrap_servers=client.kafka_bootstrap_servers,
        credentials=_read_credentials(reader),
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
        reply_topic_pattern=_reply_pattern(reader, client.reply_topic),
        meter_replies=reader.boolean("CONSUMER_METER_REPLIES", False),
        http_host=reader.text("CONSUMER_HTTP_HOST", "127.0.0.1"),
        http_port=reader.integer("CONSUMER_HTTP_PORT", 8000, 0, 65535),
        max_record_bytes=reader.integer("CONSUMER_MAX_RECORD_BYTES", 1_048_576, 64, 104_857_600),
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
        meter_dedup_window_seconds=reader.number(
            "CONSUMER_METER_DEDUP_WINDOW_SECONDS", 35 * 86_400.0, 60.0, 400 * 86_400.0
        ),
        meter_claim_seconds=reader.number("CONSUMER_METER_CLAIM_SECONDS", 60.0, 1.0, 3600.0),
        meter_dedup_max_entries=reader.integer(
            "CONSUMER_METER_DEDUP_MAX_ENTRIES", 200_000, 1_000, 100_000_000
        ),
    )
