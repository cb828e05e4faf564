"""The security matrix, on one private secured broker per session (deploy/local's
``up --secured``: SASL_SSL/SCRAM-SHA-512, SSL with client certificates, StandardAuthorizer
and the service's least-privilege ACLs): a round trip (a charge, a meter batch, a bad record
to the DLQ) through each listener, and each refusal a clear start-up error (exit 2, one JSON
line naming the setting, no traceback, the password in no line)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.process import ServiceProcess
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, load_stack_module
from tests.support.startup import assert_configuration_error, run_until_exit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# One set of topics and one group for every test here: the ACLs name them.
TOPICS = Topics()


def security_environ(listener: str, secured: dict[str, str]) -> dict[str, str]:
    """The service's Kafka settings for one listener of the secured broker."""
    tls = {"KAFKA_SSL_CA_FILE": secured["KAFKA_SSL_CA_FILE"]}
    if listener == "PLAINTEXT":
        return {"KAFKA_BOOTSTRAP_SERVERS": secured["KAFKA_BOOTSTRAP_SERVERS"]}
    if listener == "SASL_SSL":
        return {
            "KAFKA_BOOTSTRAP_SERVERS": secured["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": secured["KAFKA_SASL_USERNAME"],
            "KAFKA_SASL_PASSWORD": secured["KAFKA_SASL_PASSWORD"],
            **tls,
        }
    return {
        "KAFKA_BOOTSTRAP_SERVERS": secured["KAFKA_SSL_BOOTSTRAP_SERVERS"],
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CERT_FILE": secured["KAFKA_SSL_CERT_FILE"],
        "KAFKA_SSL_KEY_FILE": secured["KAFKA_SSL_KEY_FILE"],
        **tls,
    }


@pytest_asyncio.fixture(scope="module")
async def secured(secured_kafka_env: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    """The session's secured broker, with this module's topics made (by the super user)
    and the service principal granted exactly its ACLs on them."""
    stack = load_stack_module()
    grants = stack.ServiceGrants(
        consumed=(TOPICS.requests, TOPICS.meter),
        produced=(TOPICS.replies, TOPICS.dlq, TOPICS.meter_errors),
        group=TOPICS.environ()["CONSUMER_GROUP_ID"],
    )
    stack.grant_acls(secured_kafka_env["STACK_DIR"], grants)
    async with KafkaClient(secured_kafka_env["KAFKA_BOOTSTRAP_SERVERS"], TOPICS):
        yield secured_kafka_env


def requests(tag: str) -> dict[str, tuple[dict[str, Any] | bytes, str | None]]:
    """A charge, a meter batch of three, and a record that is not JSON (key -> value, topic)."""
    found: dict[str, tuple[dict[str, Any] | bytes, str | None]] = {
        f"{tag}-charge": (
            {"operation": "create_charge", "amount": 500, "currency": "usd", "source": "tok_visa"},
            None,
        ),
        f"{tag}-bad": (b"{not json", None),
    }
    for i in range(3):
        meter = {
            "operation": "create_meter_event",
            "event_name": "api_calls",
            "customer_id": "cus_security",
            "identifier": f"{tag}-usage-{i}",
        }
        found[f"{tag}-meter-{i}"] = (meter, TOPICS.meter)
    return found


@pytest.mark.parametrize("listener", ["PLAINTEXT", "SASL_SSL", "SSL"])
async def test_round_trip_through_each_listener(
    listener: str, secured: dict[str, str], stack: dict[str, str], standin: StandIn
) -> None:
    """Through each listener, as the least-privilege principal (CONSUMER_CREATE_TOPICS off):
    the charge and every meter event answered COMPLETED, the bad record dead-lettered."""
    tag = f"{listener.lower()}-{uuid.uuid4().hex[:6]}"
    sent = requests(tag)
    async with KafkaClient(secured["KAFKA_BOOTSTRAP_SERVERS"], TOPICS) as client:
        for key, (value, topic) in sent.items():
            await client.publish(value, key=key, topic=topic)
        settings = service_settings(
            stack,
            TOPICS,
            STRIPE_METER_EVENTS_BASE=standin.url,
            CONSUMER_METER_REPLIES="true",
            CONSUMER_CREATE_TOPICS="false",
            **security_environ(listener, secured),
        )
        answered = {key for key in sent if not key.endswith("-bad")}
        async with running_service(settings):
            replies = await client.replies(len(answered), keys=answered, timeout_s=60)
            dead = await client.read(TOPICS.dlq, 1, keys={f"{tag}-bad"}, timeout_s=60)
    assert {key: replies[key]["status"] for key in answered} == dict.fromkeys(answered, "COMPLETED")
    assert [record.value for record in dead] == [b"{not json"]


def refused_environ(secured: dict[str, str], stack: dict[str, str], **kafka: str) -> dict[str, str]:
    return {
        "STRIPE_API_BASE": stack["STRIPE_API_BASE"],
        "CONSUMER_CREATE_TOPICS": "false",
        "KAFKA_STARTUP_TIMEOUT_SECONDS": "20",
        **TOPICS.environ(),
        **kafka,
    }


def test_wrong_password_is_one_line_naming_the_sasl_settings(
    secured: dict[str, str], stack: dict[str, str]
) -> None:
    """A wrong SCRAM password: exit 2, one line naming KAFKA_SASL_PASSWORD; the password
    given appears in no line."""
    wrong = f"not-the-password-{uuid.uuid4().hex}"
    kafka = {**security_environ("SASL_SSL", secured), "KAFKA_SASL_PASSWORD": wrong}
    result = run_until_exit(refused_environ(secured, stack, **kafka))
    error = assert_configuration_error(result, "KAFKA_SASL_PASSWORD", "rejected the SASL")
    assert "stripe-consumer" in error["cause"]
    assert wrong not in result.output
    assert secured["KAFKA_SASL_PASSWORD"] not in result.output


def test_untrusted_server_certificate_names_the_ca_file(
    secured: dict[str, str], stack: dict[str, str]
) -> None:
    """A CA that did not sign the broker's certificate: exit 2, KAFKA_SSL_CA_FILE named."""
    kafka = {
        **security_environ("SSL", secured),
        "KAFKA_SSL_CA_FILE": secured["KAFKA_SSL_UNTRUSTED_CA_FILE"],
    }
    result = run_until_exit(refused_environ(secured, stack, **kafka))
    assert_configuration_error(result, "KAFKA_SSL_CA_FILE", "not trusted")


def test_missing_client_certificate_names_the_cert_file(
    secured: dict[str, str], stack: dict[str, str]
) -> None:
    """No client certificate on a listener that requires one: exit 2, KAFKA_SSL_CERT_FILE
    named as the likely cause (aiokafka's own bootstrap says only "Connection closed")."""
    kafka = security_environ("SSL", secured)
    del kafka["KAFKA_SSL_CERT_FILE"], kafka["KAFKA_SSL_KEY_FILE"]
    result = run_until_exit(refused_environ(secured, stack, **kafka))
    assert_configuration_error(result, "KAFKA_SSL_CERT_FILE", "client certificate")


def test_expired_client_certificate_names_the_cert_file(
    secured: dict[str, str], stack: dict[str, str]
) -> None:
    """An expired client certificate: the broker refuses the handshake; exit 2 naming
    KAFKA_SSL_CERT_FILE."""
    kafka = {
        **security_environ("SSL", secured),
        "KAFKA_SSL_CERT_FILE": secured["KAFKA_SSL_EXPIRED_CERT_FILE"],
        "KAFKA_SSL_KEY_FILE": secured["KAFKA_SSL_EXPIRED_KEY_FILE"],
    }
    result = run_until_exit(refused_environ(secured, stack, **kafka))
    assert_configuration_error(result, "KAFKA_SSL_CERT_FILE", "rejected the client certificate")


def test_topic_without_an_acl_is_named_at_start(
    secured: dict[str, str], stack: dict[str, str]
) -> None:
    """A request topic the principal has no ACL on: exit 2 naming CONSUMER_REQUEST_TOPICS,
    the topic and the operation, not a crash loop or a silent stall."""
    unlisted = f"{TOPICS.prefix}.unlisted"
    kafka = security_environ("SASL_SSL", secured)
    environ = {**refused_environ(secured, stack, **kafka), "CONSUMER_REQUEST_TOPICS": unlisted}
    result = run_until_exit(environ)
    error = assert_configuration_error(result, "CONSUMER_REQUEST_TOPICS", "denies Describe")
    assert unlisted in error["cause"]


def test_group_without_an_acl_is_named_not_a_traceback(
    secured: dict[str, str], stack: dict[str, str]
) -> None:
    """A consumer group the principal may not Read: exit 2 with one line naming
    CONSUMER_GROUP_ID and the operation (it was a GroupAuthorizationFailedError traceback)."""
    kafka = security_environ("SSL", secured)
    group = f"{TOPICS.prefix}.not-granted"
    environ = {**refused_environ(secured, stack, **kafka), "CONSUMER_GROUP_ID": group}
    result = run_until_exit(environ)
    error = assert_configuration_error(result, "CONSUMER_GROUP_ID", "denies Read")
    assert group in error["cause"]


async def test_reply_topic_without_write_is_a_readiness_error_until_granted(
    secured: dict[str, str], stack: dict[str, str], tmp_path: Path
) -> None:
    """No Write ACL on the reply topic: not ready, naming the topic and the operation, the
    request kept (uncommitted, retried), never a crash; once granted, answered and ready."""
    topics = Topics()
    group = topics.environ()["CONSUMER_GROUP_ID"]
    grants = load_stack_module().ServiceGrants
    grant = load_stack_module().grant_acls
    partial = grants(
        (topics.requests, topics.meter),
        (topics.dlq, topics.meter_errors),
        group,
        described_only=(topics.replies,),
    )
    grant(secured["STACK_DIR"], partial)
    kafka = security_environ("SSL", secured)
    environ = {
        **refused_environ(secured, stack, **kafka),
        **topics.environ(),
        "STRIPE_API_KEY": "sk_test_123",
    }
    async with KafkaClient(secured["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        service = ServiceProcess(environ, tmp_path / "service.log").start()
        try:
            key = f"denied-{uuid.uuid4().hex[:6]}"
            await client.publish({"operation": "get_balance"}, key=key)
            why = await until_not_ready(service, f"Write on topic(s): {topics.replies}")
            assert "ACL" in why
            grant(secured["STACK_DIR"], grants((), (topics.replies,), group))
            replies = await client.replies(1, keys={key}, timeout_s=60)
            service.wait_ready(30)
            assert service.terminate() == 0
        finally:
            service.close()
    assert replies[key]["status"] == "COMPLETED"
    assert "Traceback" not in service.log_path.read_text()


async def until_not_ready(service: ServiceProcess, text: str, timeout_s: float = 30) -> str:
    """/readyz's reason once it is 503 and says ``text``."""
    deadline = time.monotonic() + timeout_s
    seen: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        seen = service.http_get("/readyz")
        if seen[0] == 503 and text in seen[1]:
            return str(json.loads(seen[1])["status"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"/readyz never said {text!r}; last {seen}")
