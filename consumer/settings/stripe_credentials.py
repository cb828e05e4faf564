"""Stripe credentials: ``STRIPE_API_KEY`` (the `default` integration) and one file per further
integration in ``STRIPE_CREDENTIALS_DIR``; a key that is not Stripe-shaped is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from consumer.settings.reader import (
    INTEGRATION_NAME,
    STRIPE_SECRET_KEY,
    EnvironmentReader,
    SettingsError,
)
from consumer.settings.secret import Secret

DEFAULT_INTEGRATION: Final = "default"


@dataclass(frozen=True, slots=True)
class StripeCredential:
    """One named Stripe credential (Orkes calls these integrations)."""

    integration: str
    api_key: Secret

    @property
    def live_mode(self) -> bool:
        return self.api_key.reveal().split("_", 2)[1:2] == ["live"]


def _stripe_key(variable: str, value: str) -> Secret:
    if not STRIPE_SECRET_KEY.fullmatch(value):
        # Never echo the value: it may be a real key with a typo.
        raise SettingsError(
            f"{variable}: expected a Stripe secret or restricted key "
            "(sk_test_…, sk_live_…, rk_test_…, rk_live_…)"
        )
    return Secret(value)


def read_credentials(reader: EnvironmentReader) -> dict[str, StripeCredential]:
    """`STRIPE_API_KEY` is the `default` integration; `STRIPE_CREDENTIALS_DIR` adds more.

    The directory holds one file per integration, named after it, containing the key: the
    shape of a Kubernetes Secret mounted as a volume. A file named `default` replaces
    `STRIPE_API_KEY`.
    """
    credentials: dict[str, StripeCredential] = {}
    key = reader.raw("STRIPE_API_KEY")
    if key is not None:
        credentials[DEFAULT_INTEGRATION] = StripeCredential(
            DEFAULT_INTEGRATION, _stripe_key("STRIPE_API_KEY", key)
        )
    directory = reader.path("STRIPE_CREDENTIALS_DIR")
    if directory is not None:
        if not directory.is_dir():
            raise SettingsError(f"STRIPE_CREDENTIALS_DIR: {directory} is not a directory")
        for entry in sorted(directory.iterdir()):
            # Kubernetes mounts keep their real files behind `..data` links; skip those names.
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if not INTEGRATION_NAME.fullmatch(entry.name):
                raise SettingsError(
                    f"STRIPE_CREDENTIALS_DIR: file name {entry.name!r} is not a valid "
                    "integration name (letters, digits, '_', '.', '-')"
                )
            variable = f"STRIPE_CREDENTIALS_DIR/{entry.name}"
            secret = _stripe_key(variable, entry.read_text(encoding="utf-8").strip())
            credentials[entry.name] = StripeCredential(entry.name, secret)
    if DEFAULT_INTEGRATION not in credentials:
        raise SettingsError(
            "STRIPE_API_KEY is required (or a file named 'default' in STRIPE_CREDENTIALS_DIR)"
        )
    return credentials
