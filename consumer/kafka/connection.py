"""Where the brokers are and how to authenticate (``KAFKA_SECURITY_PROTOCOL``: SSL, SASL):
the options every aiokafka client here is built with."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from consumer.settings import ConfigurationProblem, KafkaSecurity


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate: what every client here needs."""

    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    client_id: str = "stripe-consumer"

    def client_options(self) -> dict[str, Any]:
        security = self.security
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": security.protocol,
        }
        if security.protocol in {"SSL", "SASL_SSL"}:
            options["ssl_context"] = tls_context(security)
        if security.protocol.startswith("SASL"):
            options["sasl_mechanism"] = security.sasl_mechanism
            options["sasl_plain_username"] = security.sasl_username
            options["sasl_plain_password"] = (
                security.sasl_password.reveal() if security.sasl_password else None
            )
        return options

    def hosts(self) -> list[tuple[str, int]]:
        """The bootstrap servers as (host, port), in the order given."""
        found = []
        for entry in self.bootstrap_servers.split(","):
            host, _, port = entry.strip().rpartition(":")
            found.append((host.strip("[]") or "localhost", int(port or 9092)))
        return found


def tls_context(security: KafkaSecurity) -> ssl.SSLContext:
    """What aiokafka's ``create_ssl_context`` makes (hostname checked, the system's CAs
    unless KAFKA_SSL_CA_FILE), loaded step by step so a bad file is named."""
    cafile = str(security.ssl_ca_file) if security.ssl_ca_file is not None else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationProblem(
            "KAFKA_SSL_CA_FILE", f"cannot load {security.ssl_ca_file} as PEM CA certificates: {exc}"
        ) from None
    if security.ssl_cert_file is None:
        if security.ssl_key_file is not None:
            raise ConfigurationProblem("KAFKA_SSL_CERT_FILE", "needed with KAFKA_SSL_KEY_FILE")
        return context
    key_password = security.ssl_key_password.reveal() if security.ssl_key_password else None
    try:
        context.load_cert_chain(
            str(security.ssl_cert_file),
            str(security.ssl_key_file) if security.ssl_key_file else None,
            key_password,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationProblem(
            "KAFKA_SSL_CERT_FILE/KAFKA_SSL_KEY_FILE/KAFKA_SSL_KEY_PASSWORD",
            f"cannot load the client certificate {security.ssl_cert_file} and its key: "
            f"{type(exc).__name__}",
        ) from None
    return context
