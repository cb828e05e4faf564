"""The broker's secured listeners (``up --secured``): a throwaway CA and certificates made with
the ``openssl`` command line per stack, SCRAM-SHA-512 users created at format time, and
KRaft's StandardAuthorizer with a super user. Text and files only; the broker module adds
what this returns to server.properties and to the StorageTool's arguments.

Listeners, all on 127.0.0.1:

- ``PLAINTEXT``: the stack's own (controller, inter-broker, tools); its principal
  ``User:ANONYMOUS`` is a super user, as is the SASL user ``admin``.
- ``SASL_SSL``: SCRAM-SHA-512, the service's user ``stripe-consumer``.
- ``SSL``: requires a client certificate; ``CN=stripe-consumer`` maps to the same principal.

Files under ``DIR/kafka/tls/``: ``ca.pem`` (trust it), ``client.pem``/``client.key`` (valid),
``expired-client.pem``/``expired-client.key`` (not valid any more, for the negative tests),
``untrusted-ca.pem`` (a CA that signed nothing here), ``broker.pem`` (key and chain).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from .shell import run

SERVICE_USER = "stripe-consumer"
ADMIN_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def tls_dir(dir: Path) -> Path:
    return dir / "kafka" / "tls"


def credentials(state: dict[str, Any]) -> dict[str, str]:
    """The SCRAM passwords of this stack (made once, kept in state.json like the ports)."""
    kafka = state.setdefault("kafka", {})
    found = kafka.get("scram")
    if not isinstance(found, dict):
        found = {SERVICE_USER: secrets.token_urlsafe(18), ADMIN_USER: secrets.token_urlsafe(18)}
        kafka["scram"] = found
    return dict(found)


def _openssl(args: list[str], what: str) -> None:
    run(["openssl", *args], f"kafka tls: {what}")


def _key_and_csr(tls: Path, name: str, subject: str) -> None:
    _openssl(
        [
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(tls / f"{name}.key"), "-out", str(tls / f"{name}.csr"),
            "-subj", subject,
        ],
        f"{name} key",
    )  # fmt: skip


def _self_signed_ca(tls: Path, name: str) -> None:
    _openssl(
        [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(tls / f"{name}.key"), "-out", str(tls / f"{name}.pem"),
            "-days", "30", "-subj", f"/CN=stripe-consumer local stack {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        f"{name}",
    )  # fmt: skip


def _sign(tls: Path, name: str, days: int, extensions: str) -> None:
    """Sign name.csr with the CA; ``days=0`` gives a certificate that expires at once."""
    ext = tls / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        [
            "x509", "-req", "-in", str(tls / f"{name}.csr"), "-CA", str(tls / "ca.pem"),
            "-CAkey", str(tls / "ca.key"), "-CAcreateserial", "-out", str(tls / f"{name}.pem"),
            "-days", str(days), "-extfile", str(ext),
        ],
        f"sign {name}",
    )  # fmt: skip


def make_certificates(dir: Path) -> Path:
    """The CA, the broker's and the clients' certificates (once per stack dir)."""
    tls = tls_dir(dir)
    if (tls / "broker.pem").exists():
        return tls
    tls.mkdir(parents=True, exist_ok=True)
    _self_signed_ca(tls, "ca")
    _self_signed_ca(tls, "untrusted-ca")
    _key_and_csr(tls, "broker-cert", "/CN=localhost")
    _sign(tls, "broker-cert", 30, "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kafka\n")
    for name, days in (("client", 30), ("expired-client", 0)):
        _key_and_csr(tls, name, f"/CN={SERVICE_USER}")
        _sign(tls, name, days, "extendedKeyUsage=clientAuth\n")
    # Kafka's PEM key store: the private key (PKCS#8, unencrypted), then the chain.
    chain = [(tls / n).read_text() for n in ("broker-cert.key", "broker-cert.pem", "ca.pem")]
    (tls / "broker.pem").write_text("".join(chain))
    return tls


def listener_properties(
    dir: Path, port: int, controller_port: int, sasl_ssl_port: int, ssl_port: int
) -> dict[str, str]:
    """server.properties entries for the three client listeners and the authorizer."""
    tls = tls_dir(dir)
    listeners = (
        f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_ssl_port},"
        f"SSL://127.0.0.1:{ssl_port}"
    )
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "controller.listener.names": "CONTROLLER",
        "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": listeners,
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"
        ),
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram_login,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls / "broker.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.sasl_ssl.ssl.client.auth": "none",
        # CN=stripe-consumer -> User:stripe-consumer, the SASL user's principal too.
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:ANONYMOUS;User:{ADMIN_USER}",
    }


def scram_format_arguments(passwords: dict[str, str]) -> list[str]:
    """StorageTool ``format`` arguments creating each SCRAM user in the cluster's metadata."""
    arguments: list[str] = []
    for user, password in sorted(passwords.items()):
        arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
    return arguments


def client_env(dir: Path, state: dict[str, Any]) -> dict[str, str]:
    """stack.env's entries for the secured listeners (the service's principal on both)."""
    kafka, tls = state["kafka"], tls_dir(dir)
    return {
        "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka['sasl_ssl_port']}",
        "KAFKA_SSL_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka['ssl_port']}",
        "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "KAFKA_SASL_USERNAME": SERVICE_USER,
        "KAFKA_SASL_PASSWORD": credentials(state)[SERVICE_USER],
        "KAFKA_SSL_CA_FILE": str(tls / "ca.pem"),
        "KAFKA_SSL_CERT_FILE": str(tls / "client.pem"),
        "KAFKA_SSL_KEY_FILE": str(tls / "client.key"),
        "KAFKA_SSL_EXPIRED_CERT_FILE": str(tls / "expired-client.pem"),
        "KAFKA_SSL_EXPIRED_KEY_FILE": str(tls / "expired-client.key"),
        "KAFKA_SSL_UNTRUSTED_CA_FILE": str(tls / "untrusted-ca.pem"),
    }
