"""Idempotency keys follow the contract's derivation and stay stable across redelivery."""

from __future__ import annotations

import msgspec

from consumer.idempotency import RecordCoordinates, derive_key, key_text, request_hash
from consumer.messages import OperationRequest, Request

AT = RecordCoordinates("stripe.requests", 2, 41)


def request(**fields: object) -> OperationRequest:
    base: dict[str, object] = {
        "operation": "create_charge",
        "amount": 100,
        "currency": "usd",
        "source": "tok_visa",
    }
    result: OperationRequest = msgspec.convert({**base, **fields}, Request)
    return result


def key_of(req: OperationRequest, record_key: bytes | None = b"task-1", limit: int = 255) -> str:
    return derive_key(req, request_hash(req), record_key, AT, limit=limit)


def test_explicit_key_wins() -> None:
    """1. The request's own idempotency_key is used as is."""
    assert (
        key_of(request(idempotency_key="order-6735", workflowInstanceId="wf", taskRefName="r"))
        == "order-6735"
    )


def test_workflow_and_task_ref_with_hash() -> None:
    """2. `{workflowInstanceId}:{taskRefName}:{h}` when both are present."""
    req = request(workflowInstanceId="wf-1", taskRefName="charge_card", taskId="t-1")
    assert key_of(req) == f"wf-1:charge_card:{request_hash(req)}"


def test_conductor_retry_with_new_task_id_keeps_the_key() -> None:
    """A retry is a new record (new taskId, record key, partition and offset) that keeps the
    first attempt's key, `{workflowInstanceId}:{taskRefName}:{h}`: neither the taskId, the
    record key nor the coordinates enter it."""
    first = request(workflowInstanceId="wf-1", taskRefName="charge_card", taskId="t-1")
    retry = request(
        workflowInstanceId="wf-1", taskRefName="charge_card", taskId="t-2", correlationId="c-2"
    )
    first_key = derive_key(
        first, request_hash(first), b"t-1", RecordCoordinates("stripe.requests", 0, 7)
    )
    retry_key = derive_key(
        retry, request_hash(retry), b"t-2", RecordCoordinates("stripe.requests", 2, 9_000)
    )
    assert first_key == retry_key == f"wf-1:charge_card:{request_hash(first)}"
    other_workflow = request(workflowInstanceId="wf-2", taskRefName="charge_card", taskId="t-1")
    assert key_of(other_workflow, b"t-1") != first_key


def test_changed_parameters_change_the_key() -> None:
    """A rerun with different parameters gets a new key, not Stripe's idempotency error."""
    a = request(workflowInstanceId="wf-1", taskRefName="charge_card")
    b = request(workflowInstanceId="wf-1", taskRefName="charge_card", amount=101)
    assert key_of(a) != key_of(b)


def test_connected_account_changes_the_hash() -> None:
    """The same parameters on another connected account are another request."""
    assert request_hash(request()) != request_hash(request(stripe_account="acct_1"))


def test_conductor_fields_do_not_change_the_hash() -> None:
    """Only what Stripe sees goes into the hash."""
    assert request_hash(request()) == request_hash(request(taskId="x", correlationId="y"))


def test_record_key_with_hash() -> None:
    """3. `{key}:{h}` without workflow fields."""
    req = request()
    assert key_of(req, b"task-1") == f"task-1:{request_hash(req)}"


def test_coordinates_without_key() -> None:
    """4. `{topic}:{partition}:{offset}` when nothing else applies."""
    assert key_of(request(), None) == "stripe.requests:2:41"


def test_long_keys_are_hashed_to_fit() -> None:
    """A key over the limit becomes a stable hash within it."""
    req = request(workflowInstanceId="w" * 200, taskRefName="r" * 200)
    key = key_of(req)
    assert key.startswith("sha256:")
    assert len(key) <= 255
    assert key == key_of(req)
    assert len(key_of(req, limit=40)) == 40
    assert key_of(request(workflowInstanceId="w" * 200, taskRefName="other")) != key


def test_binary_record_key_is_hex() -> None:
    """Record keys that are not UTF-8 are written as hex."""
    assert key_text(b"\xff\x00") == "ff00"
    assert key_text(None) is None


def test_derived_keys_never_carry_control_characters() -> None:
    """A workflow id, task reference or record key with a newline would make an invalid
    `Idempotency-Key` header: such a key is replaced by a stable hash of it."""
    req = request(workflowInstanceId="wf\n1", taskRefName="charge\r\n")
    key = key_of(req)
    assert key.startswith("sha256:")
    assert key == key_of(request(workflowInstanceId="wf\n1", taskRefName="charge\r\n"))
    assert key != key_of(request(workflowInstanceId="wf\n2", taskRefName="charge\r\n"))
    assert key_of(request(), b"task\x001").startswith("sha256:")
    assert key_of(request(), b"task-1") == f"task-1:{request_hash(request())}"
