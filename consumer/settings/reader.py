"""Typed, validated access to one environment mapping (``os.environ``, or a dict in tests):
every error is a :class:`SettingsError` naming the variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

# Every pattern here is used with `fullmatch`: `re.match` with `$` also accepts a trailing
# newline (`stripe.replies\n`).
INTEGRATION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
STRIPE_SECRET_KEY = re.compile(r"(sk|rk)_(test|live)_\S+")
_HTTP_URL = re.compile(r"https?://[^\s/\x00-\x1f\x7f]+(/[^\s\x00-\x1f\x7f]*)?")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class EnvironmentReader:
    """Typed access to one environment mapping; every error names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def required(self, name: str, hint: str) -> str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(f"{name} is required: {hint}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}: expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"{name}: expected an integer from {low} to {high}, got {number}")
        return number

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        if self.raw(name) is None:
            return None
        return self.integer(name, low, low, high)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"{name}: expected a number from {low} to {high}, got {number}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {value!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def topic(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not TOPIC_NAME.fullmatch(value):
            raise SettingsError(f"{name}: {value!r} is not a valid Kafka topic name")
        return value

    def topics(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        names = tuple(part.strip() for part in value.split(",") if part.strip())
        if not names:
            raise SettingsError(f"{name}: expected a comma-separated list of topics")
        for topic in names:
            if not TOPIC_NAME.fullmatch(topic):
                raise SettingsError(f"{name}: {topic!r} is not a valid Kafka topic name")
        return names

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.exists():
            raise SettingsError(f"{name}: {value} does not exist")
        return path

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default).rstrip("/")
        if not _HTTP_URL.fullmatch(value):
            raise SettingsError(f"{name}: expected an http(s) URL, got {value!r}")
        return value
