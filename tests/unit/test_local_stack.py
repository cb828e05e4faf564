"""The local stack's own helpers (deploy/local/stack/), where they can be checked without
starting anything."""

from __future__ import annotations

from tests.support.stack import load_stack_module


def test_kafka_cluster_ids_never_start_with_a_dash() -> None:
    """Kafka's StorageTool reads an id starting with `-` as an option and refuses to format:
    one random base64url id in 64 did, failing a whole test session's stack."""
    stack = load_stack_module()
    ids = [stack.kafka_cluster_id() for _ in range(5_000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(cluster_id) == 22 for cluster_id in ids)
    assert len(set(ids)) == len(ids)
