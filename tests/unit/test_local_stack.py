"""The local stack's own helpers (deploy/local/stack/), where they can be checked without
starting anything."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import load_local_script, load_stack_module


def test_kafka_cluster_ids_never_start_with_a_dash() -> None:
    """Kafka's StorageTool reads an id starting with `-` as an option and refuses to format:
    one random base64url id in 64 did, failing a whole test session's stack."""
    stack = load_stack_module()
    ids = [stack.kafka_cluster_id() for _ in range(5_000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(cluster_id) == 22 for cluster_id in ids)
    assert len(set(ids)) == len(ids)


def test_cluster_nodes_replicate_as_production_does() -> None:
    """Every node of `up --brokers 3` knows all three voters and keeps RF 3,
    min.insync.replicas 2 and unclean leader election off, internal topics included."""
    cluster = load_local_script("stack").kafka_cluster
    nodes = {str(n): {"port": 9000 + n, "controller_port": 9100 + n} for n in (1, 2, 3)}
    state = {cluster.CLUSTER: {"cluster_id": "x", "partitions": 3, "nodes": nodes}}
    text = cluster.cluster_properties(state, 2, Path("/data"))
    properties = dict(line.split("=", 1) for line in text.splitlines())
    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == (
        "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    )
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9002"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert properties[key] == "3"
    assert properties["min.insync.replicas"] == "2"
    assert properties["transaction.state.log.min.isr"] == "2"
    assert properties["unclean.leader.election.enable"] == "false"


def test_service_acls_are_least_privilege() -> None:
    """The grants of `up --secured` (and the README's kafka-acls commands): Read and
    Describe on the consumed topics and the group, Write and Describe on the outputs,
    IdempotentWrite on the cluster, Create only when asked."""
    acls = load_local_script("stack").kafka_acls
    calls = acls.ServiceGrants().commands()
    principal = ["--add", "--allow-principal", "User:stripe-consumer"]
    assert calls == [
        [*principal, "--operation", "Read", "--operation", "Describe",
         "--topic", "stripe.requests", "--topic", "stripe.meter-events",
         "--group", "stripe-consumer"],
        [*principal, "--operation", "Write", "--operation", "Describe",
         "--topic", "stripe.replies", "--topic", "stripe.dlq", "--topic", "stripe.meter-errors",
         "--topic", "stripe.replies.wait"],
        [*principal, "--operation", "IdempotentWrite", "--cluster"],
    ]  # fmt: skip
    with_create = acls.ServiceGrants(create_topics=True).commands()
    assert with_create[-1][3:5] == ["--operation", "Create"]
    assert len(with_create) == 4
