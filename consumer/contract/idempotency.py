"""Idempotency keys: one per logical request, stable across redelivery and Conductor retries.

The contract's derivation, first that applies:

1. the request's own ``idempotency_key``;
2. ``{workflowInstanceId}:{taskRefName}:{h}``, or ``{workflowInstanceId}:{taskRefName}:
   {iteration}:{h}`` when the request gives ``iteration``: a retried Conductor task gets a new
   taskId but keeps these, so its retries share the key; a rerun with changed parameters
   changes ``h`` and gets a new key instead of Stripe's idempotency error. Inside a DO_WHILE
   loop every iteration's EVENT task publishes the same workflowInstanceId and taskRefName
   (Conductor suffixes its own reference name with ``__N`` but puts neither that nor the
   iteration in the payload), so the iteration is what tells two iterations apart; a retry
   inside one iteration keeps it;
3. ``{record key}:{h}``;
4. ``{topic}:{partition}:{offset}``: the record's coordinates, stable across redelivery.

``h`` is a short hash of the operation, the connected account and the operation's parameters
as given (not the iteration, which sits beside it). Keys hold no personal data (parameters
only enter through the hash). Meter-event identifiers are derived the same way, shortened to
Stripe's 100 characters. A derived key too long, or holding a control character (from a
workflow id, reference name or record key: an HTTP header cannot carry a newline), is
replaced by a stable hash of itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

import msgspec
from msgspec import UNSET

from consumer.contract.requests import CONDUCTOR_FIELDS, OperationRequest

MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
MAX_METER_IDENTIFIER_LENGTH: Final = 100
_HASH_CHARS: Final = 16
_CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_canonical = msgspec.json.Encoder(order="sorted")


class RecordCoordinates(msgspec.Struct, frozen=True):
    """Where a record sits in Kafka; unique and stable across redelivery."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def key_text(key: bytes | None) -> str | None:
    """A record key as text: UTF-8 when it is, hex otherwise (keys are opaque bytes)."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.hex()


# Everything that is not what Stripe is asked to do, reset so the encoding leaves it out.
_NOT_HASHED: Final[dict[str, Any]] = {
    **dict.fromkeys(CONDUCTOR_FIELDS, UNSET),
    "idempotency_key": UNSET,
    "reply_topic": UNSET,
    "iteration": UNSET,
    "integration": "default",
}


def request_hash(request: OperationRequest) -> str:
    """A short stable hash of what the request asks Stripe to do: the operation, the
    connected account and the parameters as given (canonical JSON, keys sorted)."""
    essence = msgspec.structs.replace(request, **_NOT_HASHED)
    return hashlib.sha256(_canonical.encode(essence)).hexdigest()[:_HASH_CHARS]


def _fit(key: str, limit: int) -> str:
    if len(key) <= limit and not _CONTROL_CHARACTER.search(key):
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[: limit - 7]


def derive_key(
    request: OperationRequest,
    request_hash: str,
    record_key: bytes | None,
    coordinates: RecordCoordinates,
    *,
    limit: int = MAX_IDEMPOTENCY_KEY_LENGTH,
) -> str:
    """The request's idempotency key, by the contract's derivation (module docstring).

    ``request_hash`` is :func:`request_hash` of the request (the caller computes it once).
    """
    return _fit(_unbounded_key(request, request_hash, record_key, coordinates), limit)


def _unbounded_key(
    request: OperationRequest,
    request_hash: str,
    record_key: bytes | None,
    coordinates: RecordCoordinates,
) -> str:
    if isinstance(request.idempotency_key, str):
        return request.idempotency_key
    workflow, task_ref = request.workflowInstanceId, request.taskRefName
    if isinstance(workflow, str) and workflow and isinstance(task_ref, str) and task_ref:
        if isinstance(request.iteration, int):
            return f"{workflow}:{task_ref}:{request.iteration}:{request_hash}"
        return f"{workflow}:{task_ref}:{request_hash}"
    text = key_text(record_key)
    if text:
        return f"{text}:{request_hash}"
    return str(coordinates)
