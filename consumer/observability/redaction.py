"""Masking of secrets in any text that leaves the process (logs, replies, DLQ, metrics).

Stripe keys have a recognisable shape, so anything that looks like one is masked even when
it is not one of ours (a key pasted into a description, a key echoed in an error message).
Configured secrets are masked by value as well, whatever their shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_STRIPE_KEY_SHAPE = re.compile(r"\b(sk|rk|pk|whsec|ek)_(test_|live_)?[A-Za-z0-9]{6,}")
# What every match of the shape contains: text without any of these has no key in it, which
# a substring scan tells far sooner than the regex (the request log line: 3 % of the CPU per
# request went to this regex alone).
_SHAPE_MARKERS = ("sk_", "rk_", "pk_", "whsec_", "ek_")
MASK = "[redacted]"


class Redactor:
    """Masks Stripe-key-shaped strings and every configured secret value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if not any(marker in text for marker in _SHAPE_MARKERS):
            return text
        return _STRIPE_KEY_SHAPE.sub(lambda m: f"{m.group(1)}_{m.group(2) or ''}{MASK}", text)
