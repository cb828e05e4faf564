"""The chart's autoscaling: KEDA on the group's lag (with the service's Kafka credentials)
or an HPA on CPU, never beyond the request topic's partitions, scaling down slowly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import ALL_ON, BASE_VALUES, CHART, Helm, merge

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]
KEDA = merge(BASE_VALUES, {"autoscaling": {"enabled": True, "kind": "keda"}})
HPA = merge(BASE_VALUES, {"autoscaling": {"enabled": True, "kind": "hpa"}})


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("kind", ["keda", "hpa"])
def test_more_replicas_than_partitions_fails_the_render(helm: Helm, kind: str) -> None:
    """maxReplicas above topics.partitions is refused with the reason; equal renders."""
    values = {"autoscaling": {"enabled": True, "kind": kind, "maxReplicas": 8}}
    result = helm.run("template", "x", str(CHART), values=merge(BASE_VALUES, values))
    assert result.returncode != 0
    assert "autoscaling.maxReplicas (8) is above topics.partitions (6)" in result.stderr
    values["topics"] = {"partitions": 8}
    assert helm.template(merge(BASE_VALUES, values))


def test_keda_scales_on_each_topics_lag_and_cpu(helm: Helm) -> None:
    """One Kafka lag trigger per consumed topic (idle consumers not allowed, no lag counted
    on a topic never committed), a CPU trigger, slow scale-down; no auth on PLAINTEXT."""
    docs = helm.template(KEDA)
    scaled = one(docs, "ScaledObject")["spec"]
    kafka = [t for t in scaled["triggers"] if t["type"] == "kafka"]
    assert [t["metadata"]["topic"] for t in kafka] == ["stripe.requests", "stripe.meter-events"]
    for trigger in kafka:
        assert trigger["metadata"]["consumerGroup"] == "stripe-consumer"
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
        assert trigger["metadata"]["offsetResetPolicy"] == "latest"
        assert "authenticationRef" not in trigger
    [cpu] = [t for t in scaled["triggers"] if t["type"] == "cpu"]
    assert cpu["metadata"]["value"] == "70"
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 6)
    assert "TriggerAuthentication" not in {d["kind"] for d in docs}
    assert "replicas" not in one(docs, "Deployment")["spec"]  # the autoscaler owns it


def test_keda_reads_a_secured_brokers_lag_with_the_services_credentials(helm: Helm) -> None:
    """On SASL_SSL each trigger names the mechanism and TLS and a TriggerAuthentication that
    takes the user name from the pod's environment and the password and CA from their
    Secrets (the same the service mounts)."""
    docs = helm.template(merge(BASE_VALUES, ALL_ON))
    auth = one(docs, "TriggerAuthentication")
    for trigger in one(docs, "ScaledObject")["spec"]["triggers"]:
        if trigger["type"] == "kafka":
            assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            assert trigger["metadata"]["tls"] == "enable"
    assert auth["spec"]["env"] == [{"parameter": "username", "name": "KAFKA_SASL_USERNAME"}]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {"password": ("kafka-sasl", "password"), "ca": ("kafka-ca", "ca.crt")}
    settings = next(d for d in docs if d["kind"] == "ConfigMap")  # the first: the settings
    assert settings["data"]["KAFKA_SASL_USERNAME"] == "stripe-consumer"


def test_the_hpa_fallback_scales_on_cpu_and_down_slowly(helm: Helm) -> None:
    """Without KEDA: an HPA on CPU utilisation with the same bounds and behaviour."""
    hpa = one(helm.template(HPA), "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    [metric] = hpa["metrics"]
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
