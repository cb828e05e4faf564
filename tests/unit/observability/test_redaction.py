"""Anything shaped like a Stripe key, and every configured secret, is masked."""

from __future__ import annotations

from consumer.observability.redaction import Redactor


def test_key_shapes_are_masked() -> None:
    """Secret, restricted, publishable keys and webhook secrets are masked by shape."""
    redact = Redactor()
    text = (
        "Invalid API Key provided: sk_live_51HxYZabc123; "
        "also rk_test_abcdef123 and whsec_abcdef1234"
    )
    assert redact(text) == (
        "Invalid API Key provided: sk_live_[redacted]; also rk_test_[redacted] and whsec_[redacted]"
    )


def test_configured_secrets_are_masked_whatever_their_shape() -> None:
    """A Kafka password has no recognisable shape; it is masked by value."""
    assert Redactor(["hunter2-kafka"])("password=hunter2-kafka") == "password=[redacted]"


def test_ordinary_text_is_untouched() -> None:
    """Ids and words that merely start like keys are not masked."""
    text = "charge ch_3MmlLrLkdIwHu7ix0snN0B15 for customer cus_NffrFeUfNV2Hib; skip_this"
    assert Redactor()(text) == text


def test_each_key_shape_alone_is_masked() -> None:
    """Every shape is masked when it is the only key-like text in a line (the quick scan
    that skips the regex must know every prefix)."""
    for prefix in ("sk", "rk", "pk", "whsec", "ek"):
        text = f'{{"error": "bad key {prefix}_live_abcdef123"}}'
        assert Redactor()(text) == f'{{"error": "bad key {prefix}_live_[redacted]"}}'
