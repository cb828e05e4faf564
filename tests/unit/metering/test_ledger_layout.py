"""Where the Redis ledger puts an identifier: stable, spread, sized to keep hashes compact."""

from __future__ import annotations

from consumer.metering.ledgers.ledger_layout import (
    FIELDS_PER_HASH,
    GROUPS,
    LedgerLayout,
    bucket_seconds,
    shards_for,
)
from consumer.metering.ledgers.protocol import LedgerScope

SCOPE = LedgerScope("default", None)


def test_an_identifier_always_lands_in_the_same_place() -> None:
    """Two replicas place an identifier alike: 16-byte digest, hash-tagged base, pending key."""
    layout = LedgerLayout("p:meter:", window_seconds=35 * 86_400, events_per_second=1_000)
    placed = layout.place(SCOPE, "evt-1")
    assert placed == layout.place(SCOPE, "evt-1")
    assert len(placed.digest) == 16
    assert placed.base.startswith("p:meter:{default:-:")
    assert placed.base.endswith("}:378000")
    assert placed.pending_key.startswith(placed.base.rsplit(":", 1)[0] + ":p:")


def test_identifiers_spread_over_every_group() -> None:
    """The 64 hash-tag groups all fill (what spreads one account over a cluster)."""
    layout = LedgerLayout("p:", window_seconds=86_400, events_per_second=1)
    groups = {layout.place(SCOPE, f"evt-{i}").base for i in range(20_000)}
    assert len(groups) == GROUPS


def test_buckets_are_an_eighth_of_the_window_and_shards_keep_hashes_small() -> None:
    """A claim looks in nine buckets; at the sized rate a hash holds at most 96 fields."""
    assert bucket_seconds(35 * 86_400) == 378_000
    assert bucket_seconds(60) == 60
    for rate in (1, 1_000, 10_000, 100_000):
        shards = shards_for(rate, 378_000)
        per_hash = rate * 378_000 / GROUPS / shards
        assert per_hash <= FIELDS_PER_HASH
        assert shards == 1 or per_hash > FIELDS_PER_HASH / 2
