"""Start-up against the brokers: wait (bounded) until one answers, and turn what refuses us
into a :class:`ConfigurationProblem` naming the setting and the likely cause.

aiokafka's own bootstrap logs the real cause (the TLS alert, the SASL refusal) and raises
only "Unable to bootstrap"; so :func:`diagnose` connects the way every client here does,
one connection per bootstrap server, and keeps the exception. The same connection asks for
the service's topics' metadata, so a principal without Describe on one is named at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from consumer.kafka.connection import KafkaConnection
from consumer.settings import ConfigurationProblem, KafkaSecurity

TOPIC_AUTHORIZATION_FAILED: Final = 29
UNKNOWN_TOPIC_OR_PARTITION: Final = 3
FIRST_RETRY_SECONDS: Final = 0.5
LONGEST_RETRY_SECONDS: Final = 5.0
CONNECT_TIMEOUT_SECONDS: Final = 10.0
_CERT_ALERTS: Final = (
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REQUIRED",
    "CERTIFICATE_REVOKED",
    "UNKNOWN_CA",
    "UNSUPPORTED_CERTIFICATE",
)


async def wait_for_brokers(
    connection: KafkaConnection,
    topics: Mapping[str, str],
    *,
    timeout_s: float,
    waiting: Callable[[ConfigurationProblem], None],
    missing_ok: bool = False,
) -> None:
    """Return once a broker answers and may describe ``topics`` (topic -> its setting),
    which exist (unless ``missing_ok``: they are about to be created).

    A refusal (password, certificate, ACL) raises at once; no broker answering, or a topic
    missing, is retried with backoff (``waiting`` hears why each time) until ``timeout_s``,
    then raised: never a silent stall on a topic nobody creates."""
    deadline = time.monotonic() + timeout_s
    delay = FIRST_RETRY_SECONDS
    while True:
        problem = await diagnose(connection, topics, missing_ok=missing_ok)
        if problem is None:
            return
        if not problem.retriable:
            raise problem
        left = deadline - time.monotonic()
        if left <= 0:
            raise ConfigurationProblem(
                problem.setting, f"{problem.cause} (gave up after {timeout_s:.0f} s)"
            )
        waiting(problem)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, LONGEST_RETRY_SECONDS)


async def diagnose(
    connection: KafkaConnection, topics: Mapping[str, str], *, missing_ok: bool = False
) -> ConfigurationProblem | None:
    """None when a bootstrap server answers; else what went wrong (the first refusal, or
    the last server's error when none answers)."""
    options = connection.client_options()  # raises ConfigurationProblem for bad TLS files
    found: ConfigurationProblem | None = None
    for host, port in connection.hosts():
        try:
            missing = await _describe(host, port, options, list(topics))
        except TopicAuthorizationFailedError as exc:
            topic = str(exc.args[0]) if exc.args else "?"
            return missing_acl("Describe", f"topic {topic}", topics.get(topic, "?"))
        except (OSError, TimeoutError, KafkaError) as exc:
            found = classify(exc, connection)
            if not found.retriable:
                return found
        else:
            if missing and not missing_ok:
                return ConfigurationProblem(
                    topics[missing[0]],
                    f"topic {missing[0]} does not exist (and the service did not create it: "
                    "CONSUMER_CREATE_TOPICS off, or no Create ACL)",
                    retriable=True,
                )
            return None
    return found


async def _describe(host: str, port: int, options: dict[str, Any], topics: list[str]) -> list[str]:
    """The topics' metadata over one connection made as the clients make theirs; return
    those that do not exist; raise what the connection met."""
    settings = {k: v for k, v in options.items() if k not in {"bootstrap_servers"}}
    conn = await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(CONNECT_TIMEOUT_SECONDS * 1000), **settings),
        CONNECT_TIMEOUT_SECONDS,
    )
    try:
        response = await conn.send(MetadataRequest(topics, allow_auto_topic_creation=False))
    finally:
        conn.close()
    missing = []
    for error_code, topic, *_ in response.topics:
        if error_code == TOPIC_AUTHORIZATION_FAILED:
            raise TopicAuthorizationFailedError(topic)
        if error_code == UNKNOWN_TOPIC_OR_PARTITION:
            missing.append(topic)
    return missing


def missing_acl(operation: str, resource: str, setting: str) -> ConfigurationProblem:
    return ConfigurationProblem(
        setting,
        f"the broker denies {operation} on {resource} to this principal: grant the ACL "
        "(README, 'Kafka security')",
    )


def classify(exc: BaseException, connection: KafkaConnection) -> ConfigurationProblem:
    """What an exception met while connecting or starting says about the settings."""
    security = connection.security
    authorization = _authorization(exc)
    if authorization is not None:
        return authorization
    if isinstance(exc, SaslAuthenticationFailed | AuthenticationFailedError):
        return ConfigurationProblem(
            "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD",
            f"the broker rejected the SASL credentials of user {security.sasl_username!r} "
            f"({security.sasl_mechanism}): a wrong password or an unknown user",
        )
    if isinstance(
        exc,
        UnsupportedSaslMechanismError | IllegalSaslStateError | AuthenticationMethodNotSupported,
    ):
        return ConfigurationProblem(
            "KAFKA_SASL_MECHANISM",
            f"the broker does not accept {security.sasl_mechanism} on this listener",
        )
    tls = _tls_problem(exc, security)
    if tls is not None:
        return tls
    servers = connection.bootstrap_servers
    return ConfigurationProblem(
        "KAFKA_BOOTSTRAP_SERVERS",
        f"no Kafka broker answers at {servers} ({_describe_error(exc)})",
        retriable=True,
    )


def _authorization(exc: BaseException) -> ConfigurationProblem | None:
    if isinstance(exc, TopicAuthorizationFailedError):
        return missing_acl("Read", f"a consumed topic ({exc})", "CONSUMER_*_TOPIC (ACL)")
    if isinstance(exc, GroupAuthorizationFailedError):
        return missing_acl("Read", f"the consumer group ({exc})", "CONSUMER_GROUP_ID (ACL)")
    if isinstance(exc, ClusterAuthorizationFailedError | TransactionalIdAuthorizationFailed):
        return missing_acl("IdempotentWrite", "the cluster", "ACL (cluster)")
    return None


def _tls_problem(exc: BaseException, security: KafkaSecurity) -> ConfigurationProblem | None:
    tls = security.protocol in {"SSL", "SASL_SSL"}
    cause = exc.__cause__ if isinstance(exc, KafkaConnectionError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        message = str(cause.verify_message)
        if "mismatch" in message or "hostname" in message:
            return ConfigurationProblem(
                "KAFKA_BOOTSTRAP_SERVERS",
                f"the broker's certificate does not name the host connected to ({message})",
            )
        return ConfigurationProblem(
            "KAFKA_SSL_CA_FILE",
            f"the broker's certificate is not trusted ({message}): KAFKA_SSL_CA_FILE must hold "
            "the CA that signed it",
        )
    if isinstance(cause, ssl.SSLError):
        reason = str(cause.reason or cause)
        if any(alert in reason for alert in _CERT_ALERTS):
            return ConfigurationProblem(
                "KAFKA_SSL_CERT_FILE",
                f"the broker rejected the client certificate (TLS alert {reason}): missing, "
                "expired, or not signed by a CA the broker trusts",
            )
        if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
            return _not_tls(security)
    closed = isinstance(exc, KafkaConnectionError) and "closed" in str(exc)
    if closed and tls:
        return ConfigurationProblem(
            "KAFKA_SSL_CERT_FILE",
            "the broker closed a TLS connection during start-up: a missing or rejected client "
            "certificate is the likely cause",
        )
    if closed:
        return ConfigurationProblem(
            "KAFKA_SECURITY_PROTOCOL",
            f"the broker closed the connection at once: its listener likely expects TLS or "
            f"SASL, not {security.protocol}",
            retriable=True,  # or a broker shutting down: wait (bounded) before saying so
        )
    if tls and isinstance(exc, ConnectionResetError):
        return _not_tls(security, retriable=True)
    return None


def _not_tls(security: KafkaSecurity, *, retriable: bool = False) -> ConfigurationProblem:
    return ConfigurationProblem(
        "KAFKA_SECURITY_PROTOCOL",
        f"{security.protocol} needs a TLS listener; this one does not speak TLS",
        retriable=retriable,
    )


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, KafkaError) else f"{type(exc).__name__}: {text}"


async def stop_quietly(client: Any) -> None:
    """Stop an aiokafka client whose start failed, so asyncio reports nothing unclosed."""
    with contextlib.suppress(Exception):
        await client.stop()
