"""Configuration: the only package that reads the environment, validated once at start-up;
a bad value fails fast naming the variable. Imports nothing of the service.

Every setting comes from a mapping (``os.environ`` in production, a plain dict in tests) and
is validated once at start-up. A bad value raises :class:`SettingsError` naming the variable,
so the process fails fast with a message an operator can act on.

Secrets (Stripe keys, Kafka passwords) are wrapped in :class:`Secret`, whose ``repr`` and
``str`` are masked; only the Stripe gateway and the Kafka client factory call ``reveal()``.
"""

from consumer.settings.kafka import ClientSettings, KafkaSecurity, load_client_settings
from consumer.settings.meter_verdicts import WEBHOOK_TOLERANCE_SECONDS, MeterVerdictSettings
from consumer.settings.problems import ConfigurationProblem
from consumer.settings.reader import SettingsError
from consumer.settings.secret import Secret
from consumer.settings.service import (
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_STRIPE_API_BASE,
    DEFAULT_STRIPE_METER_EVENTS_BASE,
    Settings,
    load_settings,
)
from consumer.settings.stripe_credentials import DEFAULT_INTEGRATION, StripeCredential

__all__ = [
    "DEFAULT_INTEGRATION",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_STRIPE_API_BASE",
    "DEFAULT_STRIPE_METER_EVENTS_BASE",
    "WEBHOOK_TOLERANCE_SECONDS",
    "ClientSettings",
    "ConfigurationProblem",
    "KafkaSecurity",
    "MeterVerdictSettings",
    "Secret",
    "Settings",
    "SettingsError",
    "StripeCredential",
    "load_client_settings",
    "load_settings",
]
