"""One example request per operation, and the record a Conductor EVENT task publishes.

Used by the demo, the tests and the example workflows, so all three show the same thing. The
ids are shaped like Stripe's test ids; stripe-mock answers any id of the right shape.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Example:
    """One operation's example: the Stripe object type its reply carries in
    ``output.object``, and its request parameters."""

    reply_object: str
    parameters: dict[str, Any]


EXAMPLES: Final[dict[str, Example]] = {
    "get_balance": Example("balance", {}),
    "list_customers": Example("list", {"limit": 3, "email": "jenny.rosen@example.com"}),
    "create_customer": Example(
        "customer",
        {
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone_number": "+15555550100",
            "description": "Customer created by a workflow",
            "metadata": {"order_id": "6735"},
        },
    ),
    "get_customer": Example("customer", {"customer_id": "cus_NffrFeUfNV2Hib"}),
    "update_customer": Example(
        "customer",
        {
            "customer_id": "cus_NffrFeUfNV2Hib",
            "description": "Updated by a workflow",
            "metadata": {"tier": "gold"},
        },
    ),
    "delete_customer": Example("customer", {"customer_id": "cus_NffrFeUfNV2Hib"}),
    "create_coupon": Example(
        "coupon",
        {
            "id": "SUMMER25",
            "percent_off": 25,
            "duration": "repeating",
            "duration_in_months": "3",
            "name": "Summer 25%",
        },
    ),
    "list_coupons": Example("list", {"limit": 5}),
    "create_payment_intent": Example(
        "payment_intent",
        {
            "amount": 2000,
            "currency": "USD",
            "customer_id": "cus_NffrFeUfNV2Hib",
            "description": "Order 6735",
            "metadata": {"order_id": "6735"},
        },
    ),
    "get_payment_intent": Example(
        "payment_intent", {"payment_intent_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa"}
    ),
    "cancel_payment_intent": Example(
        "payment_intent",
        {
            "payment_intent_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "cancellation_reason": "requested_by_customer",
        },
    ),
    "list_charges": Example("list", {"limit": 3, "customer_id": "cus_NffrFeUfNV2Hib"}),
    "create_charge": Example(
        "charge",
        {
            "amount": 4200,
            "currency": "usd",
            "source": "tok_visa",
            "description": "Order 6736",
            "metadata": {"order_id": "6736"},
        },
    ),
    "update_charge": Example(
        "charge",
        {
            "charge_id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
            "description": "Order 6736 (shipped)",
            "metadata": {"shipped": "true"},
        },
    ),
    "get_charge": Example("charge", {"charge_id": "ch_3MmlLrLkdIwHu7ix0snN0B15"}),
    "create_refund": Example(
        "refund",
        {
            "charge_id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
            "amount": 1000,
            "reason": "requested_by_customer",
        },
    ),
    "get_refund": Example("refund", {"refund_id": "re_1Nispe2eZvKYlo2Cd31jOCgZ"}),
    "attach_payment_method": Example(
        "payment_method",
        {
            "payment_method_id": "pm_card_visa",
            "customer_id": "cus_NffrFeUfNV2Hib",
        },
    ),
    "get_payment_method": Example(
        "payment_method", {"payment_method_id": "pm_1Q0PsIJvEtkwdCNYMSaVuRz6"}
    ),
    "detach_payment_method": Example(
        "payment_method", {"payment_method_id": "pm_1Q0PsIJvEtkwdCNYMSaVuRz6"}
    ),
    "create_meter_event": Example(
        "billing.meter_event",
        {
            "event_name": "api_requests",
            "customer_id": "cus_NffrFeUfNV2Hib",
            "value": 3,
        },
    ),
    "cancel_meter_event": Example(
        "billing.meter_event_adjustment",
        {"event_name": "api_requests", "identifier": "order-6735:api-call-17"},
    ),
}
EXAMPLE_PARAMETERS: Final = {operation: e.parameters for operation, e in EXAMPLES.items()}
EXPECTED_OBJECT: Final = {operation: e.reply_object for operation, e in EXAMPLES.items()}


def conductor_requests(
    *, workflow_instance_id: str, sink: str = "kafka:stripe.requests"
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """One example request per operation, as one workflow's EVENT tasks publish them:
    (task id per operation, payload per operation)."""
    task_ids = {operation: str(uuid.uuid4()) for operation in EXAMPLE_PARAMETERS}
    payloads = {
        operation: conductor_event_payload(
            operation,
            parameters,
            workflow_instance_id=workflow_instance_id,
            task_id=task_ids[operation],
            task_ref_name=f"{operation}_task",
            sink=sink,
        )
        for operation, parameters in EXAMPLE_PARAMETERS.items()
    }
    return task_ids, payloads


def conductor_event_payload(
    operation: str,
    parameters: dict[str, Any],
    *,
    workflow_instance_id: str | None = None,
    task_id: str | None = None,
    task_ref_name: str | None = None,
    sink: str = "kafka:stripe.requests",
) -> dict[str, Any]:
    """The record value an OSS Conductor EVENT task publishes: its resolved inputParameters
    plus the fields Conductor adds (sink, asyncComplete, workflow*, correlationId, ...)."""
    task_id = task_id or str(uuid.uuid4())
    return {
        "operation": operation,
        **parameters,
        "taskId": task_id,
        "taskRefName": task_ref_name or f"{operation}_ref",
        "sink": sink,
        "asyncComplete": True,
        "workflowInstanceId": workflow_instance_id or str(uuid.uuid4()),
        "workflowType": "stripe_operations_demo",
        "workflowVersion": 1,
        "correlationId": f"demo-{int(time.time())}",
        "taskToDomain": {},
        "event_produced": sink,
    }
