"""Idempotency keys follow the contract's derivation and stay stable across redelivery."""

from __future__ import annotations

import msgspec

from consumer.contract.idempotency import RecordCoordinates, derive_key, key_text, request_hash
from consumer.contract.requests import OperationRequest, Request

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


def test_iteration_enters_the_derived_key() -> None:
    """Inside a DO_WHILE loop: `{workflowInstanceId}:{taskRefName}:{iteration}:{h}`."""
    req = request(workflowInstanceId="wf-1", taskRefName="charge_card", iteration=2)
    assert key_of(req) == f"wf-1:charge_card:2:{request_hash(req)}"


def test_two_iterations_with_equal_parameters_are_two_operations() -> None:
    """Equal parameters in iterations 1 and 2 get two keys (two charges), and neither is
    the key of the same task outside a loop."""
    keys = {
        key_of(request(workflowInstanceId="wf-1", taskRefName="charge_card", iteration=n))
        for n in (0, 1, 2)
    }
    keys.add(key_of(request(workflowInstanceId="wf-1", taskRefName="charge_card")))
    assert len(keys) == 4


def test_a_retry_inside_one_iteration_keeps_the_key() -> None:
    """A Conductor retry inside iteration 3 (new taskId, record key and offset) is one
    operation with the first attempt."""
    first = request(workflowInstanceId="wf-1", taskRefName="charge", taskId="t-1", iteration=3)
    retry = request(workflowInstanceId="wf-1", taskRefName="charge", taskId="t-9", iteration=3)
    first_key = derive_key(first, request_hash(first), b"t-1", RecordCoordinates("r", 0, 1))
    retry_key = derive_key(retry, request_hash(retry), b"t-9", RecordCoordinates("r", 1, 50))
    assert first_key == retry_key == f"wf-1:charge:3:{request_hash(first)}"


def test_iteration_is_not_part_of_the_hash() -> None:
    """`h` hashes what Stripe is asked to do; the iteration enters the key beside it."""
    assert (
        request_hash(request(iteration=1))
        == request_hash(request(iteration=7))
        == request_hash(request())
        == request_hash(request(iteration=None))
    )


def test_null_iteration_means_not_given() -> None:
    """`${loop.output.iteration}` outside a loop resolves to null: the key has no iteration."""
    req = request(workflowInstanceId="wf-1", taskRefName="charge_card", iteration=None)
    assert key_of(req) == f"wf-1:charge_card:{request_hash(req)}"


def test_explicit_key_wins_over_iteration() -> None:
    """The request's own idempotency_key is used as is, iteration or not."""
    req = request(idempotency_key="order-1", workflowInstanceId="w", taskRefName="r", iteration=4)
    assert key_of(req) == "order-1"


def test_meter_identifier_is_derived_with_the_iteration() -> None:
    """A meter event per iteration without an identifier gets one identifier per iteration."""
    event = {"operation": "create_meter_event", "event_name": "api_calls", "customer_id": "cus_1"}
    by_iteration = [
        msgspec.convert({**event, "workflowInstanceId": "wf", "taskRefName": "m", "iteration": n},
                        Request)
        for n in (1, 2)
    ]  # fmt: skip
    identifiers = [key_of(req, limit=100) for req in by_iteration]
    assert identifiers == [
        f"wf:m:{n}:{request_hash(req)}" for n, req in zip((1, 2), by_iteration, strict=True)
    ]


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
