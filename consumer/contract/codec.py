"""Bytes in, a request (or the reason there is none) out; a reply in, bytes out.

A record value becomes exactly one of:

- :class:`ValidRequest`: a typed request that passed every rule of the contract;
- :class:`InvalidRequest`: a JSON object that breaks the contract, with the JSON path of
  the field at fault (its reply is a `validation_error`; it never reaches Stripe);
- :class:`DeadLetter`: not a JSON object at all (too large, empty, not UTF-8, not JSON, or
  JSON but not an object); it goes to the DLQ unchanged.

Decoding never raises on input.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec

from consumer.contract.errors import RequestRejected
from consumer.contract.reply import Reply
from consumer.contract.requests import (
    CONDUCTOR_FIELDS,
    OPERATION_NAMES,
    PATTERN_MEANINGS,
    ConductorFields,
    FieldError,
    OperationRequest,
    Request,
)

DeadLetterReason = Literal["too_large", "empty", "not_utf8", "not_json", "not_object"]

_PATH_SUFFIX: Final = re.compile(r"^(?P<message>.*?) - at (?:`key` in )?`(?P<path>\$[^`]*)`$", re.S)
_FIELD_PROBLEM: Final = re.compile(
    r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`"
)
_REGEX_MISMATCH: Final = re.compile(r"^Expected `str` matching regex (?P<pattern>'.*')$", re.S)
# msgspec quotes the pattern with repr(), so look meanings up the same way.
_MEANING_BY_PATTERN_REPR: Final = {repr(p): meaning for p, meaning in PATTERN_MEANINGS.items()}
_OPERATIONS_HINT: Final = "expected one of: " + ", ".join(OPERATION_NAMES)


class ValidRequest(msgspec.Struct, frozen=True):
    request: OperationRequest
    passthrough: dict[str, Any]  # the request's `_`-prefixed fields, echoed into the reply


class InvalidRequest(msgspec.Struct, frozen=True):
    error: RequestRejected
    operation: str | None
    conductor: ConductorFields  # whatever Conductor fields could be read, for the reply
    passthrough: dict[str, Any]
    reply_topic: str | None  # as requested (still subject to the allow-list)


class DeadLetter(msgspec.Struct, frozen=True):
    reason: DeadLetterReason
    detail: str


Decoded = ValidRequest | InvalidRequest | DeadLetter


def _rejection(error: msgspec.ValidationError) -> RequestRejected:
    """Turn msgspec's message into (param, message), keeping its wording where it is clear."""
    text = str(error)
    match = _PATH_SUFFIX.match(text)
    message, path = (match["message"], match["path"]) if match else (text, "$")
    field = _FIELD_PROBLEM.match(message)
    param = f"{path}.{field['name']}" if field else path
    if param == "$.operation":
        if message.startswith("Object missing"):
            return RequestRejected(param, f"Missing `operation`; {_OPERATIONS_HINT}")
        return RequestRejected(param, f"Unknown `operation`; {_OPERATIONS_HINT}")
    mismatch = _REGEX_MISMATCH.match(message)
    meaning = _MEANING_BY_PATTERN_REPR.get(mismatch["pattern"]) if mismatch else None
    if meaning is not None:
        where = f"`key` in `{path}`" if "`key` in" in text else f"`{path}`"
        return RequestRejected(param, f"Expected {meaning} - at {where}")
    if field:
        return RequestRejected(param, f"{message} - at `{path}`" if path != "$" else message)
    return RequestRejected(param, text)


def _readable_conductor_fields(obj: dict[str, Any]) -> ConductorFields:
    """The Conductor fields of an invalid request that have the right type (others dropped)."""
    fields = {name: obj[name] for name in CONDUCTOR_FIELDS if name in obj}
    for _ in range(len(fields) + 1):
        try:
            return msgspec.convert(fields, ConductorFields)
        except msgspec.ValidationError as exc:
            match = _PATH_SUFFIX.match(str(exc))
            bad = match["path"].removeprefix("$.").split(".")[0].split("[")[0] if match else None
            if bad not in fields:
                break
            del fields[bad]
    return ConductorFields()


class RequestDecoder:
    """Decodes request records. Built once; ``decode`` is safe to call on any bytes.

    The fast path decodes straight into the typed union (about 2 µs). Only a record that
    fails it takes the slow path: a plain JSON decode to tell a dead letter from an invalid
    request, and, when the object carries `_`-prefixed fields (Orkes adds `_createdBy`), a
    second typed decode without them.
    """

    def __init__(self, max_record_bytes: int) -> None:
        self._max_record_bytes = max_record_bytes
        self._typed = msgspec.json.Decoder(Request)
        self._untyped = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()

    def decode(self, value: bytes | None, now: float) -> Decoded:
        if not value:
            return DeadLetter("empty", "The record has no value")
        if len(value) > self._max_record_bytes:
            return DeadLetter(
                "too_large",
                f"The record value has {len(value)} bytes; the limit is {self._max_record_bytes}",
            )
        try:
            return self._decode_object(value, now)
        except RecursionError:  # nested past the decoder's depth, on either path
            return _too_deep(value)

    def peek(self, value: bytes | None) -> OperationRequest | None:
        """The request, if the record is a well-formed one (decoded, not yet checked); None
        otherwise. For scheduling only: ``decode`` is what answers the record."""
        if not value or len(value) > self._max_record_bytes:
            return None
        try:
            request: OperationRequest = self._typed.decode(value)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        return request

    def _decode_object(self, value: bytes, now: float) -> Decoded:
        try:
            request: OperationRequest = self._typed.decode(value)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as first_error:
            return self._slow_path(value, now, first_error)
        return self._checked(request, now, {})

    def _slow_path(self, value: bytes, now: float, first_error: Exception) -> Decoded:
        try:
            obj = self._untyped.decode(value)
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            return _not_json(value, exc)
        if not isinstance(obj, dict):
            return DeadLetter(
                "not_object", f"The record value is JSON but not an object: {_kind(obj)}"
            )
        passthrough = {k: obj.pop(k) for k in [k for k in obj if k.startswith("_")]}
        if not passthrough:
            if not isinstance(first_error, msgspec.ValidationError):
                raise first_error  # a JSON object that failed to decode otherwise: a bug
            return self._invalid(_rejection(first_error), obj, passthrough)
        try:
            request: OperationRequest = self._typed.decode(self._encoder.encode(obj))
        except msgspec.ValidationError as exc:
            return self._invalid(_rejection(exc), obj, passthrough)
        return self._checked(request, now, passthrough)

    @staticmethod
    def _checked(request: OperationRequest, now: float, passthrough: dict[str, Any]) -> Decoded:
        """Apply the rules across fields; a decoded request echoes all its Conductor fields."""
        try:
            request.check(now)
        except FieldError as exc:
            return InvalidRequest(
                error=RequestRejected(exc.param, exc.message),
                operation=request.operation,
                conductor=request,
                passthrough=passthrough,
                reply_topic=request.reply_topic if isinstance(request.reply_topic, str) else None,
            )
        return ValidRequest(request, passthrough)

    @staticmethod
    def _invalid(
        error: RequestRejected, obj: dict[str, Any], passthrough: dict[str, Any]
    ) -> InvalidRequest:
        operation = obj.get("operation")
        reply_topic = obj.get("reply_topic")
        return InvalidRequest(
            error=error,
            operation=operation
            if isinstance(operation, str) and operation in OPERATION_NAMES
            else None,
            conductor=_readable_conductor_fields(obj),
            passthrough=passthrough,
            reply_topic=reply_topic if isinstance(reply_topic, str) else None,
        )


def _too_deep(value: bytes) -> Decoded:
    """JSON nested deeper than the decoder goes (about 1,000 levels; a request needs 3): an
    object is an invalid request (its fields unread), anything else a dead letter."""
    if not value.lstrip().startswith(b"{"):
        return DeadLetter("not_object", "The record value is JSON nested too deeply to read")
    return InvalidRequest(
        error=RequestRejected("$", "The request is nested too deeply to read"),
        operation=None,
        conductor=ConductorFields(),
        passthrough={},
        reply_topic=None,
    )


def _not_json(value: bytes, exc: Exception) -> DeadLetter:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        return DeadLetter(
            "not_utf8",
            f"The record value is not UTF-8: {utf8_error.reason} at byte {utf8_error.start}",
        )
    return DeadLetter("not_json", f"The record value is not JSON: {exc}")


def _kind(obj: object) -> str:
    if obj is None:
        return "null"
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(obj), type(obj).__name__
    )


_reply_encoder = msgspec.json.Encoder()


def encode_reply(reply: Reply, passthrough: dict[str, Any]) -> bytes:
    """The reply's JSON; the request's `_`-prefixed fields come first, echoed as given."""
    body = _reply_encoder.encode(reply)
    if not passthrough:
        return body
    extra = _reply_encoder.encode(passthrough)
    # Two JSON objects spliced into one: no key can clash (reply fields never start with `_`).
    return extra[:-1] + b"," + body[1:]
