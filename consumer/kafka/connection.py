"""Where the brokers are and how to authenticate (``KAFKA_SECURITY_PROTOCOL``: SSL, SASL):
the options every aiokafka client here is built with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.helpers import create_ssl_context

from consumer.settings import KafkaSecurity


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
            options["ssl_context"] = create_ssl_context(
                cafile=security.ssl_ca_file,
                certfile=security.ssl_cert_file,
                keyfile=security.ssl_key_file,
                password=security.ssl_key_password.reveal() if security.ssl_key_password else None,
            )
        if security.protocol.startswith("SASL"):
            options["sasl_mechanism"] = security.sasl_mechanism
            options["sasl_plain_username"] = security.sasl_username
            options["sasl_plain_password"] = (
                security.sasl_password.reveal() if security.sasl_password else None
            )
        return options
