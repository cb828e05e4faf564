"""Stripe's verdict on meter events: the webhook's signing secrets, the poller of
``GET /v2/core/events``, the active meters' refresh, reconciliation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from consumer.settings.reader import INTEGRATION_NAME, EnvironmentReader, SettingsError
from consumer.settings.secret import Secret

WEBHOOK_TOLERANCE_SECONDS: Final = 300  # Stripe's default, and the contract's


@dataclass(frozen=True, slots=True)
class MeterVerdictSettings:
    # integration -> the event destination's signing secret (whsec_…)
    webhook_secrets: dict[str, Secret] = field(default_factory=dict)
    poll_seconds: float = 60.0  # 0: no poller
    lookback_hours: float = 24.0
    meters_refresh_seconds: float = 0.0  # 0: no pre-validation against the meters list
    reconcile_every_seconds: float = 0.0  # 0: the periodic reconcile is off
    reconcile_since_hours: float = 6.0
    reconcile_tolerance: float = 0.0


def read_meter_verdict_settings(reader: EnvironmentReader) -> MeterVerdictSettings:
    return MeterVerdictSettings(
        webhook_secrets=_webhook_secrets(reader),
        poll_seconds=reader.number("CONSUMER_METER_ERRORS_POLL_SECONDS", 60.0, 0.0, 86_400.0),
        lookback_hours=reader.number("CONSUMER_METER_ERRORS_LOOKBACK_HOURS", 24.0, 0.0, 720.0),
        meters_refresh_seconds=reader.number("CONSUMER_METERS_REFRESH_SECONDS", 0.0, 0.0, 86_400.0),
    )


def _webhook_secrets(reader: EnvironmentReader) -> dict[str, Secret]:
    """``STRIPE_WEBHOOK_SECRET`` for `default`; ``STRIPE_WEBHOOK_SECRETS_DIR`` holds one file
    per further integration, named after it (as ``STRIPE_CREDENTIALS_DIR`` holds keys)."""
    secrets: dict[str, Secret] = {}
    value = reader.raw("STRIPE_WEBHOOK_SECRET")
    if value is not None:
        secrets["default"] = _secret("STRIPE_WEBHOOK_SECRET", value)
    directory = reader.path("STRIPE_WEBHOOK_SECRETS_DIR")
    if directory is not None:
        if not directory.is_dir():
            raise SettingsError(f"STRIPE_WEBHOOK_SECRETS_DIR: {directory} is not a directory")
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if not INTEGRATION_NAME.fullmatch(entry.name):
                raise SettingsError(
                    f"STRIPE_WEBHOOK_SECRETS_DIR: {entry.name!r} is not an integration name"
                )
            variable = f"STRIPE_WEBHOOK_SECRETS_DIR/{entry.name}"
            secrets[entry.name] = _secret(variable, entry.read_text(encoding="utf-8").strip())
    return secrets


def _secret(variable: str, value: str) -> Secret:
    if not value.startswith("whsec_") or len(value) < 10:
        raise SettingsError(f"{variable}: expected an event destination signing secret (whsec_…)")
    return Secret(value)
