"""Requests checked before they are sent: a Struct built in Python is typed but its limits
(lengths, patterns, ranges, cross-field rules) are only checked on decoding, so
:func:`encode_request` decodes the JSON it produces with the service's own decoder and raises
:class:`FieldError` naming the JSON path, as the reply would."""

from __future__ import annotations

import time
from typing import Final

import msgspec

from consumer.contract.codec import DeadLetter, InvalidRequest, RequestDecoder
from consumer.contract.requests import FieldError, OperationRequest
from consumer.settings import DEFAULT_MAX_RECORD_BYTES

# The service's default CONSUMER_MAX_RECORD_BYTES; a deployment may allow more.
_decoder: Final = RequestDecoder(DEFAULT_MAX_RECORD_BYTES)
_encoder: Final = msgspec.json.Encoder()


def encode_request(request: OperationRequest, *, now: float | None = None) -> bytes:
    """The request's JSON, once the service's decoder accepts it; FieldError otherwise."""
    value = _encoder.encode(request)
    decoded = _decoder.decode(value, time.time() if now is None else now)
    if isinstance(decoded, InvalidRequest):
        detail = decoded.error.detail
        raise FieldError(detail.param or "$", detail.message)
    if isinstance(decoded, DeadLetter):
        raise FieldError("$", decoded.detail)
    return value
