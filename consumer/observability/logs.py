"""Structured logs: one canonical line per request, JSON in production, text on a terminal.

Every line passes through the redactor, so a secret that reaches a log call by mistake is
still masked. The SDKs' own loggers are kept at WARNING: the stripe SDK logs each error
response at INFO, which would duplicate (and not redact) what the request line says.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final

import msgspec

from consumer.observability.redaction import Redactor

LOGGER_NAME: Final = "stripe_consumer"
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
_encoder = msgspec.json.Encoder()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact
        self._second = -1  # the whole second whose text is cached below
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime a second, not one a line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry: dict[str, Any] = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = _encoder.encode(entry).decode("utf-8", "replace")
        return self._redact(line)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        return self._redact(f"{line} {extra}" if extra else line)


def configure_logging(level: str, fmt: str, redact: Redactor) -> None:
    """``fmt``: json, text, or auto (text on a terminal, JSON otherwise)."""
    handler = logging.StreamHandler(sys.stderr)
    use_text = fmt == "text" or (fmt == "auto" and sys.stderr.isatty())
    handler.setFormatter(TextFormatter(redact) if use_text else JsonFormatter(redact))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # No formatter here prints the caller's file and line, thread or process: skip collecting
    # them for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for noisy in ("stripe", "aiokafka", "kafka", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
