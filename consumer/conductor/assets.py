"""What Conductor needs to use the service: event handlers and example workflows.

Generated from the request Structs and the examples, written to ``deploy/conductor/`` (a test
fails when the files drift) and registered with ``python -m consumer conductor register``.

- Event handlers turn a reply into ``complete_task`` or ``fail_task`` for the EVENT task that
  published the request, addressed by ``taskId``. OSS Conductor's Kafka event queue wraps a
  record as ``{"key", "headers", "payload"}``, so OSS expressions read ``${payload.taskId}``;
  Orkes roots them at the record value (``${taskId}``) and names the event
  ``kafka:<integration>:<topic>``.
- The KAFKA_PUBLISH style (``kafka_publish.py``): its handlers complete a WAIT task by
  ``workflowInstanceId`` and ``taskRefName`` from the replies on ``<reply topic>.wait``.
- Example workflows: one per operation, each an EVENT task whose inputs come from the
  workflow's input, two chains whose ids flow from task to task, and a DO_WHILE loop whose
  EVENT task passes the loop's ``iteration`` (so equal iterations are separate operations).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from consumer.conductor.kafka_publish import kafka_publish_workflow, wait_event_handlers
from consumer.contract.examples import EXAMPLE_PARAMETERS
from consumer.contract.requests import COMMON_FIELDS, CONDUCTOR_FIELDS, REQUEST_TYPES

COMPLETED_HANDLER: Final = "stripe_consumer_reply_completed"
FAILED_HANDLER: Final = "stripe_consumer_reply_failed"
OWNER_EMAIL: Final = "payments-platform@example.com"


def _parameters(request_type: type[msgspec.Struct]) -> list[str]:
    skipped = set(COMMON_FIELDS) | set(CONDUCTOR_FIELDS)
    return [name for name in request_type.__struct_fields__ if name not in skipped]


def event_handlers(reply_topic: str, *, suffix: str = "") -> list[dict[str, Any]]:
    """OSS Conductor: complete or fail the EVENT task named in the reply's `taskId`."""
    event = f"kafka:{reply_topic}"
    return [
        {
            "name": COMPLETED_HANDLER + suffix,
            "event": event,
            "active": True,
            "evaluatorType": "javascript",
            "condition": "$.payload.status == 'COMPLETED'",
            "actions": [
                {
                    "action": "complete_task",
                    "expandInlineJSON": False,
                    "complete_task": {
                        "taskId": "${payload.taskId}",
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
            "name": FAILED_HANDLER + suffix,
            "event": event,
            "active": True,
            "evaluatorType": "javascript",
            # Only our replies: a status other than COMPLETED, and a task to fail.
            "condition": "$.payload.status != 'COMPLETED' && $.payload.taskId != null",
            "actions": [
                {
                    "action": "fail_task",
                    "expandInlineJSON": False,
                    "fail_task": {
                        "taskId": "${payload.taskId}",
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


def orkes_event_handlers(reply_topic: str, kafka_integration: str) -> list[dict[str, Any]]:
    """Orkes Conductor: the same handlers, rooted at the record value, with Orkes' event name.

    Orkes can also set FAILED_WITH_TERMINAL_ERROR; OSS `fail_task` gives FAILED, which the
    task's retry policy (retryCount, 0 for EVENT tasks by default) may retry.
    """
    handlers = event_handlers(reply_topic)
    text = msgspec.json.encode(handlers).decode()
    text = text.replace("${payload.", "${").replace("$.payload.", "$.")
    rooted: list[dict[str, Any]] = msgspec.json.decode(text)
    for handler in rooted:
        handler["event"] = f"kafka:{kafka_integration}:{reply_topic}"
    return rooted


def _event_task(operation: str, ref: str, sink: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"stripe_{operation}",
        "taskReferenceName": ref,
        "type": "EVENT",
        "sink": sink,
        "asyncComplete": True,
        "inputParameters": {
            "operation": operation,
            "taskId": "${CPEWF_TASK_ID}",
            "taskRefName": ref,
            **inputs,
        },
    }


def _workflow(
    name: str,
    description: str,
    tasks: list[dict[str, Any]],
    output: dict[str, Any],
    inputs: list[str],
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": OWNER_EMAIL,
        "inputParameters": inputs,
        "tasks": tasks,
        "outputParameters": output,
        "timeoutPolicy": "TIME_OUT_WF",
        "timeoutSeconds": 600,
    }


def operation_workflows(request_topic: str) -> list[dict[str, Any]]:
    """One workflow per operation: its parameters come from the workflow's input."""
    sink = f"kafka:{request_topic}"
    workflows = []
    for request_type in REQUEST_TYPES:
        operation = str(request_type.__struct_config__.tag)
        parameters = _parameters(request_type)
        inputs = {name: f"${{workflow.input.{name}}}" for name in parameters}
        workflows.append(
            _workflow(
                f"stripe_{operation}",
                f"{request_type.summary} (one EVENT task, answered by stripe-consumer). "
                f"Example input: {msgspec.json.encode(EXAMPLE_PARAMETERS[operation]).decode()}",
                [_event_task(operation, operation, sink, inputs)],
                {"result": f"${{{operation}.output.result}}"},
                parameters,
            )
        )
    return workflows


def chain_workflows(request_topic: str) -> list[dict[str, Any]]:
    """Two workflows whose Stripe ids flow from one task to the next."""
    sink = f"kafka:{request_topic}"
    payment = _workflow(
        "stripe_customer_payment_intent_chain",
        "Create a customer, a payment intent for them, read it back, cancel it.",
        [
            _event_task("create_customer", "create_customer", sink, {
                "email": "${workflow.input.email}", "name": "${workflow.input.name}",
                "metadata": {"workflow": "${workflow.workflowId}"},
            }),
            _event_task("create_payment_intent", "create_payment_intent", sink, {
                "customer_id": "${create_customer.output.result.id}",
                "amount": "${workflow.input.amount}", "currency": "${workflow.input.currency}",
            }),
            _event_task("get_payment_intent", "get_payment_intent", sink, {
                "payment_intent_id": "${create_payment_intent.output.result.id}",
            }),
            _event_task("cancel_payment_intent", "cancel_payment_intent", sink, {
                "payment_intent_id": "${get_payment_intent.output.result.id}",
                "cancellation_reason": "requested_by_customer",
            }),
        ],
        {
            "customer_id": "${create_customer.output.result.id}",
            "payment_intent_id": "${create_payment_intent.output.result.id}",
            "status": "${cancel_payment_intent.output.result.status}",
        },
        ["email", "name", "amount", "currency"],
    )  # fmt: skip
    refund = _workflow(
        "stripe_charge_refund_chain",
        "Charge a card, refund part of it, read the refund back.",
        [
            _event_task("create_charge", "create_charge", sink, {
                "amount": "${workflow.input.amount}", "currency": "${workflow.input.currency}",
                "source": "${workflow.input.source}",
            }),
            _event_task("create_refund", "create_refund", sink, {
                "charge_id": "${create_charge.output.result.id}",
                "amount": "${workflow.input.refund_amount}",
                "reason": "requested_by_customer",
            }),
            _event_task("get_refund", "get_refund", sink, {
                "refund_id": "${create_refund.output.result.id}",
            }),
        ],
        {
            "charge_id": "${create_charge.output.result.id}",
            "refund_id": "${create_refund.output.result.id}",
            "refunded_charge": "${get_refund.output.result.charge}",
        },
        ["amount", "currency", "source", "refund_amount"],
    )  # fmt: skip
    return [payment, refund]


INSTALLMENTS_LOOP: Final = "charge_installments"
INSTALLMENT_TASK: Final = "charge_installment"
# Conductor retries an EVENT task only when it has a task definition; inline, it travels with
# the workflow. A retry gets a new taskId and the same iteration, so it keeps its key.
_INSTALLMENT_RETRIES: Final = {
    "name": "stripe_create_charge",
    "ownerEmail": OWNER_EMAIL,
    "retryCount": 2,
    "retryLogic": "FIXED",
    "retryDelaySeconds": 5,
    "timeoutSeconds": 0,
    "responseTimeoutSeconds": 600,
}


def loop_workflows(request_topic: str) -> list[dict[str, Any]]:
    """A DO_WHILE loop charging the same amount once per iteration.

    Every iteration's EVENT task publishes the same workflowInstanceId and taskRefName
    (Conductor names its own task `charge_installment__1`, `__2`, ... but does not publish
    that name), so the task passes `${charge_installments.output.iteration}`: iteration 1 and
    2 are two charges, a retry inside one iteration is one.
    """
    charge = _event_task("create_charge", INSTALLMENT_TASK, f"kafka:{request_topic}", {
        "amount": "${workflow.input.amount}", "currency": "${workflow.input.currency}",
        "source": "${workflow.input.source}", "customer_id": "${workflow.input.customer_id}",
        "description": "${workflow.input.description}",
        "iteration": f"${{{INSTALLMENTS_LOOP}.output.iteration}}",
    })  # fmt: skip
    charge["taskDefinition"] = dict(_INSTALLMENT_RETRIES)
    loop = {
        "name": INSTALLMENTS_LOOP,
        "taskReferenceName": INSTALLMENTS_LOOP,
        "type": "DO_WHILE",
        "inputParameters": {"installments": "${workflow.input.installments}"},
        "loopCondition": f"if ($.{INSTALLMENTS_LOOP}['iteration'] < $.installments) "
        "{ true; } else { false; }",
        "loopOver": [charge],
    }
    installments = _workflow(
        "stripe_charge_installments",
        "Charge the same amount `installments` times in a DO_WHILE loop; each iteration's "
        "EVENT task passes the loop's `iteration`, so equal charges are not deduplicated.",
        [loop],
        {"iterations": f"${{{INSTALLMENTS_LOOP}.output.iteration}}",
         "charges": f"${{{INSTALLMENTS_LOOP}.output}}"},
        ["amount", "currency", "source", "customer_id", "description", "installments"],
    )  # fmt: skip
    return [installments]


def example_workflows(request_topic: str) -> list[dict[str, Any]]:
    """Every shipped example: one per operation, the chains and the loop."""
    return (
        operation_workflows(request_topic)
        + chain_workflows(request_topic)
        + loop_workflows(request_topic)
    )


LOOP_EXAMPLE_INPUTS: Final[dict[str, dict[str, Any]]] = {
    "stripe_charge_installments": {
        "amount": 2500,
        "currency": "usd",
        "source": "tok_visa",
        "description": "Installment",
        "installments": 2,
    },
}

CHAIN_EXAMPLE_INPUTS: Final[dict[str, dict[str, Any]]] = {
    "stripe_customer_payment_intent_chain": {
        "email": "jenny.rosen@example.com",
        "name": "Jenny Rosen",
        "amount": 2000,
        "currency": "usd",
    },
    "stripe_charge_refund_chain": {
        "amount": 4200,
        "currency": "usd",
        "source": "tok_visa",
        "refund_amount": 1000,
    },
}


def all_event_handlers(reply_topic: str, *, suffix: str = "") -> list[dict[str, Any]]:
    """OSS Conductor's handlers for both producer styles: EVENT tasks and KAFKA_PUBLISH."""
    return event_handlers(reply_topic, suffix=suffix) + wait_event_handlers(
        reply_topic, suffix=suffix
    )


def all_workflows(request_topic: str, reply_topic: str) -> list[dict[str, Any]]:
    """The EVENT-task examples and the KAFKA_PUBLISH one."""
    return [
        *example_workflows(request_topic),
        kafka_publish_workflow(request_topic, reply_topic, OWNER_EMAIL),
    ]


def asset_files(request_topic: str, reply_topic: str) -> dict[str, Any]:
    """Relative path -> JSON document, as written to deploy/conductor/."""
    files: dict[str, Any] = {
        "event-handlers/oss.json": event_handlers(reply_topic),
        "event-handlers/oss-kafka-publish.json": wait_event_handlers(reply_topic),
        "event-handlers/orkes.json": orkes_event_handlers(reply_topic, "kafka"),
    }
    for workflow in all_workflows(request_topic, reply_topic):
        files[f"workflows/{workflow['name']}.json"] = workflow
    return files
