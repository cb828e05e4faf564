"""The other producer style: a ``KAFKA_PUBLISH`` system task publishes the request and a
``WAIT`` task is completed (or failed) from the reply, matched by ``workflowInstanceId`` and
``taskRefName`` (a WAIT task has no taskId the request could carry).

What Conductor 3.32.3's KAFKA_PUBLISH writes (read off a real record): the value is
``kafka_request.value`` serialized as JSON (an object stays an object, numbers stay
numbers, field order is not kept), the key is ``kafka_request.key`` as a UTF-8 string
(StringSerializer by default), and ``kafka_request.headers`` become record headers (UTF-8
strings). So the request is the same flat JSON object an EVENT task publishes.

The requests name ``reply_topic`` = the reply topic + ``.wait`` (inside the service's
default allow-list), so these replies have their own handlers and never reach the EVENT
tasks' handlers, which complete by taskId.
"""

from __future__ import annotations

from typing import Any, Final

from consumer.settings.service import WAIT_REPLY_SUFFIX

WAIT_SUFFIX: Final = WAIT_REPLY_SUFFIX
WAIT_COMPLETED_HANDLER: Final = "stripe_consumer_wait_reply_completed"
WAIT_FAILED_HANDLER: Final = "stripe_consumer_wait_reply_failed"
KAFKA_PUBLISH_WORKFLOW: Final = "stripe_kafka_publish_create_customer"
_PUBLISH: Final = "publish_create_customer"
_WAIT: Final = "await_create_customer"
_READ: Final = "read_customer"
# Conductor's defaults (100 ms to send, 500 ms to learn a topic's metadata) fail the task on
# a busy broker or a topic not yet in its cache ("Topic ... not present in metadata after
# 500 ms", seen in CI): a few seconds for both.
_PUBLISH_TIMEOUT_MS: Final = "5000"


def wait_reply_topic(reply_topic: str) -> str:
    return reply_topic + WAIT_SUFFIX


def wait_event_handlers(reply_topic: str, *, suffix: str = "") -> list[dict[str, Any]]:
    """Complete or fail the WAIT task named by the reply's workflowInstanceId and taskRefName."""
    event = f"kafka:{wait_reply_topic(reply_topic)}"
    by_reference = {
        "workflowId": "${payload.workflowInstanceId}",
        "taskRefName": "${payload.taskRefName}",
    }
    return [
        {
            "name": WAIT_COMPLETED_HANDLER + suffix,
            "event": event,
            "active": True,
            "evaluatorType": "javascript",
            "condition": "$.payload.status == 'COMPLETED' && $.payload.taskRefName != null",
            "actions": [
                {
                    "action": "complete_task",
                    "expandInlineJSON": False,
                    "complete_task": {
                        **by_reference,
                        "output": {
                            "result": "${payload.output}",
                            "idempotency_key": "${payload.idempotency_key}",
                            "deduplicated": "${payload.deduplicated}",
                        },
                    },
                }
            ],
        },
        {
            "name": WAIT_FAILED_HANDLER + suffix,
            "event": event,
            "active": True,
            "evaluatorType": "javascript",
            "condition": "$.payload.status != 'COMPLETED' && $.payload.taskRefName != null",
            "actions": [
                {
                    "action": "fail_task",
                    "expandInlineJSON": False,
                    "fail_task": {
                        **by_reference,
                        "output": {
                            "status": "${payload.status}",
                            "error": "${payload.error}",
                            "idempotency_key": "${payload.idempotency_key}",
                        },
                        "reasonForIncompletion": "${payload.reasonForIncompletion}",
                    },
                }
            ],
        },
    ]


def kafka_publish_workflow(
    request_topic: str, reply_topic: str, owner_email: str
) -> dict[str, Any]:
    """KAFKA_PUBLISH (create_customer) -> WAIT (the reply) -> INLINE reading the customer.

    ``bootStrapServers`` comes from the workflow input (KAFKA_PUBLISH needs it in the task).
    """
    request = {
        "operation": "create_customer",
        "name": "${workflow.input.name}",
        "email": "${workflow.input.email}",
        "workflowInstanceId": "${workflow.workflowId}",
        "taskRefName": _WAIT,
        "reply_topic": wait_reply_topic(reply_topic),
    }
    publish = {
        "name": "stripe_kafka_publish",
        "taskReferenceName": _PUBLISH,
        "type": "KAFKA_PUBLISH",
        "inputParameters": {
            "kafka_request": {
                "bootStrapServers": "${workflow.input.kafka_bootstrap_servers}",
                "topic": request_topic,
                # One key per request: the reply carries it, records of one key stay in order.
                "key": f"${{workflow.workflowId}}:{_WAIT}",
                "value": request,
                "requestTimeoutMs": _PUBLISH_TIMEOUT_MS,
                "maxBlockMs": _PUBLISH_TIMEOUT_MS,
            }
        },
    }
    wait = {"name": "stripe_reply", "taskReferenceName": _WAIT, "type": "WAIT"}
    read = {
        "name": "read_customer",
        "taskReferenceName": _READ,
        "type": "INLINE",
        "inputParameters": {
            "evaluatorType": "graaljs",
            "customer": f"${{{_WAIT}.output.result}}",
            "expression": "(function () { var c = $.customer; "
            "return {id: c.id, email: c.email, greeting: 'Welcome, ' + c.name}; })();",
        },
    }
    return {
        "name": KAFKA_PUBLISH_WORKFLOW,
        "description": "The KAFKA_PUBLISH producer style: publish create_customer, WAIT for "
        "the reply (completed by workflowInstanceId + taskRefName), read the customer.",
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": owner_email,
        "inputParameters": ["kafka_bootstrap_servers", "name", "email"],
        "tasks": [publish, wait, read],
        "outputParameters": {
            "customer_id": f"${{{_WAIT}.output.result.id}}",
            "greeting": f"${{{_READ}.output.result.greeting}}",
        },
        "timeoutPolicy": "TIME_OUT_WF",
        "timeoutSeconds": 600,
    }
