"""Kafka's settings: how to reach and authenticate to the brokers (``KAFKA_SECURITY_PROTOCOL``,
SASL, SSL), and the topics: what a producer of requests needs (:class:`ClientSettings`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from consumer.settings.reader import EnvironmentReader
from consumer.settings.secret import Secret


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


def read_kafka_security(reader: EnvironmentReader) -> KafkaSecurity:
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


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What a producer of requests needs (the demo, ``send``, tests): Kafka and the topics."""

    kafka_bootstrap_servers: str
    kafka_security: KafkaSecurity
    request_topics: tuple[str, ...]
    meter_topic: str
    reply_topic: str
    dlq_topic: str
    meter_errors_topic: str


DEFAULT_REQUEST_TOPIC: Final = "stripe.requests"
DEFAULT_REPLY_TOPIC: Final = "stripe.replies"


def read_client_settings(reader: EnvironmentReader) -> ClientSettings:
    return ClientSettings(
        kafka_bootstrap_servers=reader.required(
            "KAFKA_BOOTSTRAP_SERVERS", "comma-separated host:port list of Kafka brokers"
        ),
        kafka_security=read_kafka_security(reader),
        request_topics=reader.topics("CONSUMER_REQUEST_TOPICS", (DEFAULT_REQUEST_TOPIC,)),
        meter_topic=reader.topic("CONSUMER_METER_TOPIC", "stripe.meter-events"),
        reply_topic=reader.topic("CONSUMER_REPLY_TOPIC", DEFAULT_REPLY_TOPIC),
        dlq_topic=reader.topic("CONSUMER_DLQ_TOPIC", "stripe.dlq"),
        meter_errors_topic=reader.topic("CONSUMER_METER_ERRORS_TOPIC", "stripe.meter-errors"),
    )


def load_client_settings(environ: Mapping[str, str]) -> ClientSettings:
    return read_client_settings(EnvironmentReader(environ))
