"""What an exception met at start-up says about the settings: the cases a real broker does
not always show (the integration tier's security matrix shows the rest)."""

from __future__ import annotations

import ssl

from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from consumer.kafka.connection import KafkaConnection
from consumer.kafka.startup import classify
from consumer.settings import KafkaSecurity, Secret

SSL = KafkaConnection("127.0.0.1:9093", KafkaSecurity(protocol="SSL"))
PLAIN = KafkaConnection("127.0.0.1:9092")
SASL = KafkaConnection(
    "127.0.0.1:9094",
    KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=Secret("hunter2"),
    ),
)


def test_tls_connection_closed_without_an_alert_names_the_client_certificate() -> None:
    """aiokafka drops the TLS alert: a TLS connection closed during start-up is reported as
    such, with KAFKA_SSL_CERT_FILE as the likely cause, and no waiting."""
    problem = classify(KafkaConnectionError("Connection at 127.0.0.1:9093 closed"), SSL)
    assert problem.setting == "KAFKA_SSL_CERT_FILE"
    assert "closed a TLS connection during start-up" in problem.cause
    assert not problem.retriable


def test_plaintext_connection_closed_names_the_security_protocol() -> None:
    """A PLAINTEXT client on a TLS or SASL listener: the protocol is named (after a wait:
    a broker shutting down closes connections too)."""
    problem = classify(KafkaConnectionError("Connection at 127.0.0.1:9092 closed"), PLAIN)
    assert problem.setting == "KAFKA_SECURITY_PROTOCOL"
    assert problem.retriable


def test_sasl_refusal_names_user_and_password_settings_not_the_password() -> None:
    """A refused SASL login names both settings and the user, never the password."""
    problem = classify(SaslAuthenticationFailed("invalid credentials"), SASL)
    assert problem.setting == "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
    assert "'svc'" in problem.cause
    assert "hunter2" not in str(problem)


def test_unsupported_mechanism_names_the_mechanism_setting() -> None:
    """A mechanism the listener does not enable names KAFKA_SASL_MECHANISM."""
    assert classify(UnsupportedSaslMechanismError(), SASL).setting == "KAFKA_SASL_MECHANISM"


def test_hostname_mismatch_names_the_bootstrap_servers() -> None:
    """A certificate for another host is not a CA problem: the address is named."""
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "IP address mismatch, certificate is not valid for '10.0.0.1'"
    assert classify(error, SSL).setting == "KAFKA_BOOTSTRAP_SERVERS"


def test_group_refusal_names_the_group_and_operation() -> None:
    """No Read on the consumer group: named, not retried."""
    problem = classify(GroupAuthorizationFailedError(), SSL)
    assert "CONSUMER_GROUP_ID" in problem.setting
    assert "Read on the consumer group" in problem.cause
    assert not problem.retriable


def test_refused_connection_is_retriable_and_names_the_servers() -> None:
    """Nothing listening yet: wait and retry, naming KAFKA_BOOTSTRAP_SERVERS."""
    problem = classify(ConnectionRefusedError(111, "Connection refused"), PLAIN)
    assert (problem.setting, problem.retriable) == ("KAFKA_BOOTSTRAP_SERVERS", True)
    assert "127.0.0.1:9092" in problem.cause
