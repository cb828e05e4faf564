"""The Helm chart renders, lints and validates offline, with every flag off and on, and
what it renders is what the service and Kubernetes accept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumer.observability.metrics import ServiceMetrics
from consumer.settings import load_settings
from consumer.stripe.rate_limit import RateLimiter
from consumer.stripe.shared_rate_limit import rate_limiters
from tests.chart.conftest import ALL_ON, BASE_VALUES, CHART, Helm, merge

pytestmark = [pytest.mark.chart, pytest.mark.timeout(1200)]
KUBERNETES = "1.33.0"
SASL_WITHOUT_SECRET: dict[str, Any] = {"securityProtocol": "SASL_SSL", "sasl": {"username": "u"}}


def mtls(**ssl: str) -> dict[str, Any]:
    """SSL with a client certificate, its key and the key's password, from one Secret."""
    files = {
        "existingSecret": "kafka-user",
        "certKey": "user.crt",
        "keyKey": "user.key",
        "keyPasswordKey": "user.password",
    }
    return {"securityProtocol": "SSL", "ssl": {**files, **ssl}}


VARIANTS = {
    "defaults": BASE_VALUES,
    "all_flags_on": merge(BASE_VALUES, ALL_ON),
    "hpa": merge(BASE_VALUES, {"autoscaling": {"enabled": True, "kind": "hpa"}}),
    "flags_off": merge(
        BASE_VALUES,
        {"podDisruptionBudget": {"enabled": False}, "serviceAccount": {"create": False}},
    ),
    "mtls": merge(BASE_VALUES, {"kafka": mtls()}),
    "static_group": merge(
        BASE_VALUES,
        {
            "consumer": {
                "staticMembership": True,
                "sessionTimeoutSeconds": 45,
                "heartbeatIntervalSeconds": 5,
            },
            "kafka": {"clientRack": "eu-west-1a"},
        },
    ),
    # Stripe's verdict: the webhook's signing secret, its Ingress, the NetworkPolicy
    # letting the ingress controller in (tests/chart/test_meter_verdicts.py).
    "meter_webhook": merge(
        merge(BASE_VALUES, {"networkPolicy": {"enabled": True}}),
        {
            "meterVerdicts": {
                "webhook": {
                    "existingSecret": "stripe-webhook",
                    "ingress": {
                        "enabled": True,
                        "className": "nginx",
                        "host": "hooks.example.com",
                        "tlsSecret": "hooks-tls",
                    },
                },
                "pollSeconds": 120,
            }
        },
    ),
    "deprecated_dedup_secret": merge(BASE_VALUES, {"dedup": {"existingSecret": "old-redis"}}),
    "chart_made_secret": merge(
        {"kafka": BASE_VALUES["kafka"]},
        {
            "stripe": {
                "apiKeys": {"default": "sk_test_51Placeholder", "billing": "rk_live_51Placeholder"}
            }
        },
    ),
}


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def crd_schemas(crds: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the openAPIV3Schema the operator's CRD declares."""
    schemas = {}
    for path in crds.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api_version, crd["spec"]["names"]["kind"])] = version["schema"][
                "openAPIV3Schema"
            ]
    return schemas


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_strict(variant: str, helm: Helm) -> None:
    """`helm lint --strict` passes (the values schema included)."""
    result = helm.run(
        "lint", "--strict", str(CHART), "--kube-version", KUBERNETES, values=VARIANTS[variant]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_is_valid(variant: str, helm: Helm, tools: dict[str, Path]) -> None:
    """Every object validates: Kubernetes kinds against Kubernetes' schemas (strict: no
    unknown fields), custom resources against their operators' CRD schemas."""
    custom = crd_schemas(tools["crds"])
    docs = helm.template(VARIANTS[variant])
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in custom:
            # The operators' schemas hold Go-style regexes Python cannot compile; we trust
            # the schema and check the document against it (no metaschema check).
            jsonschema.Draft7Validator(custom[key]).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_flags_choose_the_objects(helm: Helm) -> None:
    """Optional objects appear exactly when their flag is on."""
    off = set(by_kind(helm.template(VARIANTS["flags_off"])))
    on = by_kind(helm.template(VARIANTS["all_flags_on"]))
    assert off == {"ConfigMap", "Deployment", "Service"}
    assert set(on) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",  # KEDA reads the lag on the SASL_SSL broker
        "NetworkPolicy",
    }
    assert len(on["ConfigMap"]) == 2  # settings and the dashboard
    assert "HorizontalPodAutoscaler" in by_kind(helm.template(VARIANTS["hpa"]))
    made = by_kind(helm.template(VARIANTS["chart_made_secret"]))
    assert set(made["Secret"][0]["stringData"]) == {"default", "billing"}


def test_deployment_is_safe_and_drains(helm: Helm) -> None:
    """Probes on the two endpoints, non-root, read-only root, no privilege escalation,
    termination grace above the drain grace, spread over nodes, keys from a Secret."""
    docs = by_kind(helm.template(VARIANTS["all_flags_on"]))
    pod = docs["Deployment"][0]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    config = docs["ConfigMap"][0]["data"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["terminationGracePeriodSeconds"] > int(config["CONSUMER_SHUTDOWN_GRACE_SECONDS"])
    assert pod["automountServiceAccountToken"] is False
    assert "podAntiAffinity" in pod["affinity"]
    assert container["resources"]["limits"]["memory"]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert secrets == {"KAFKA_SASL_PASSWORD": "kafka-sasl", "CONSUMER_REDIS_URL": "redis-url"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[config["STRIPE_CREDENTIALS_DIR"]]["readOnly"] is True
    assert {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}[
        "stripe-keys"
    ] == "stripe-keys"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_settings_are_accepted_by_the_service(
    variant: str, helm: Helm, tmp_path: Path
) -> None:
    """The ConfigMap is configuration the service itself validates and accepts."""
    docs = by_kind(helm.template(VARIANTS[variant]))
    config = next(c for c in docs["ConfigMap"] if "KAFKA_BOOTSTRAP_SERVERS" in c["data"])["data"]
    keys = tmp_path / "stripe"
    keys.mkdir()
    (keys / "default").write_text("sk_test_51Placeholder")
    environ = {**config, "STRIPE_CREDENTIALS_DIR": str(keys), "KAFKA_SASL_PASSWORD": "x"}
    settings = load_settings(environ)
    assert settings.kafka_bootstrap_servers == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.http_host == "0.0.0.0"


def test_client_certificate_is_mounted_and_named(helm: Helm) -> None:
    """SSL with a client certificate: the Secret mounted read-only, the three files named,
    the key's password read from the Secret (never a value in the ConfigMap)."""
    docs = by_kind(helm.template(VARIANTS["mtls"]))
    [deployment] = docs["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KAFKA_SSL_CA_FILE"]["value"] == "/var/run/secrets/kafka/ca.crt"
    assert env["KAFKA_SSL_CERT_FILE"]["value"] == "/var/run/secrets/kafka/user.crt"
    assert env["KAFKA_SSL_KEY_FILE"]["value"] == "/var/run/secrets/kafka/user.key"
    password = env["KAFKA_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "kafka-user", "key": "user.password"}
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "kafka-tls"]
    assert mount["readOnly"] is True
    config = next(c for c in docs["ConfigMap"] if "KAFKA_BOOTSTRAP_SERVERS" in c["data"])["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert not [key for key in config if "PASSWORD" in key]


@pytest.mark.parametrize(("variant", "static"), [("defaults", False), ("static_group", True)])
def test_static_membership_names_each_member_after_its_pod(
    variant: str, static: bool, helm: Helm
) -> None:
    """consumer.staticMembership: CONSUMER_GROUP_INSTANCE_ID is the pod's own name (the
    downward API), so no two replicas share one; off by default."""
    docs = by_kind(helm.template(VARIANTS[variant]))
    [deployment] = docs["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container.get("env") or []}
    if not static:
        assert "CONSUMER_GROUP_INSTANCE_ID" not in env
        return
    field = env["CONSUMER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.name"
    config = next(c for c in docs["ConfigMap"] if "KAFKA_BOOTSTRAP_SERVERS" in c["data"])["data"]
    assert config["CONSUMER_SESSION_TIMEOUT_SECONDS"] == "45"
    assert config["CONSUMER_HEARTBEAT_INTERVAL_SECONDS"] == "5"
    assert config["KAFKA_CLIENT_RACK"] == "eu-west-1a"


def redis_secret(helm: Helm, values: dict[str, Any]) -> tuple[str, str] | None:
    """The (Secret, key) the Deployment reads CONSUMER_REDIS_URL from, if any."""
    [deployment] = by_kind(helm.template(values))["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    for env in container.get("env") or []:
        if env["name"] == "CONSUMER_REDIS_URL":
            ref = env["valueFrom"]["secretKeyRef"]
            return ref["name"], ref["key"]
    return None


def test_redis_comes_from_redis_values_or_the_deprecated_dedup_ones(helm: Helm) -> None:
    """redis.existingSecret wires CONSUMER_REDIS_URL; the older dedup.existingSecret still
    does (same Secret named in both is fine); neither, no Redis."""
    assert redis_secret(helm, BASE_VALUES) is None
    new = {"redis": {"existingSecret": "redis-url", "urlKey": "uri"}}
    assert redis_secret(helm, merge(BASE_VALUES, new)) == ("redis-url", "uri")
    old = {"dedup": {"existingSecret": "old-redis"}}
    assert redis_secret(helm, merge(BASE_VALUES, old)) == ("old-redis", "url")
    both = {"redis": {"existingSecret": "same"}, "dedup": {"existingSecret": "same"}}
    assert redis_secret(helm, merge(BASE_VALUES, both)) == ("same", "url")


@pytest.mark.parametrize(
    ("values", "replicas", "per_process_limit"),
    [
        ({"stripe": {"rateLimit": 25}}, 2, 12),  # replicaCount 2 (the default)
        ({"stripe": {"rateLimit": 100}, "replicaCount": 3}, 3, 33),
        ({"stripe": {"rateLimit": 60}, "autoscaling": {"enabled": True, "maxReplicas": 6}}, 6, 10),
        ({}, 2, 12),  # no rateLimit: Stripe's 25/s for the test key, shared by two
    ],
)
def test_without_redis_each_replica_keeps_to_its_share_of_the_limit(
    values: dict[str, Any], replicas: int, per_process_limit: int, helm: Helm, tmp_path: Path
) -> None:
    """The chart tells the service how many replicas share the limit (the most there can be
    when autoscaling); without Redis each process then keeps to limit / replicas."""
    docs = by_kind(helm.template(merge(BASE_VALUES, values)))
    config = next(c for c in docs["ConfigMap"] if "KAFKA_BOOTSTRAP_SERVERS" in c["data"])["data"]
    assert config["CONSUMER_REPLICAS"] == str(replicas)
    keys = tmp_path / "stripe"
    keys.mkdir()
    (keys / "default").write_text("sk_test_51Placeholder")
    settings = load_settings({**config, "STRIPE_CREDENTIALS_DIR": str(keys)})
    [limiter] = rate_limiters(settings, None, "").values()
    assert isinstance(limiter, RateLimiter)
    assert limiter.configured_limit == per_process_limit


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stripe": {"existingSecret": "k"}}, "kafka.bootstrapServers is required"),
        ({"kafka": {"bootstrapServers": "k:9092"}}, "set stripe.existingSecret"),
        (merge(BASE_VALUES, {"kafka": SASL_WITHOUT_SECRET}), "/kafka/sasl/existingSecret"),
        (
            merge(BASE_VALUES, {"kafka": {**SASL_WITHOUT_SECRET, "sasl": {"existingSecret": "p"}}}),
            "/kafka/sasl/username",
        ),
        (merge(BASE_VALUES, {"kafka": mtls(keyKey="")}), "/kafka/ssl/keyKey"),
        (merge(BASE_VALUES, {"kafka": mtls(certKey="")}), "/kafka/ssl/certKey"),
        (merge(BASE_VALUES, {"kafka": mtls(existingSecret="")}), "/kafka/ssl/existingSecret"),
        (
            merge(BASE_VALUES, {"kafka": mtls(certKey="", keyKey="", keyPasswordKey="pw")}),
            "/kafka/ssl/keyKey",
        ),
        (
            merge(BASE_VALUES, {"kafka": {"ssl": {"existingSecret": "kafka-ca"}}}),
            "/kafka/securityProtocol",
        ),
        (
            merge(BASE_VALUES, {"terminationGracePeriodSeconds": 20}),
            "terminationGracePeriodSeconds must be longer",
        ),
        (merge(BASE_VALUES, {"consumer": {"meterApi": "v3"}}), "meterApi"),
        (
            merge(
                BASE_VALUES,
                {"redis": {"existingSecret": "new"}, "dedup": {"existingSecret": "old"}},
            ),
            "set redis.existingSecret only",
        ),
        (merge(BASE_VALUES, {"redis": {"keyPrefix": "has space"}}), "keyPrefix"),
        (merge(BASE_VALUES, {"stripe": {"apiKeys": {"default": "pk_live_oops"}}}), "apiKeys"),
        (
            merge(
                {"kafka": BASE_VALUES["kafka"]}, {"stripe": {"apiKeys": {"billing": "sk_test_1"}}}
            ),
            "default",
        ),
    ],
)
def test_bad_values_fail_with_a_clear_message(
    values: dict[str, Any], message: str, helm: Helm
) -> None:
    """Mistakes fail at install time, naming what is wrong."""
    result = helm.run(
        "template", "payments", str(CHART), "--kube-version", KUBERNETES, values=values
    )
    assert result.returncode != 0
    assert message in result.stderr


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\b(stripe_consumer_[a-z_]+?)(?:_bucket|_count|_sum)?\b", text))


def test_alerts_and_dashboard_use_only_exported_metrics() -> None:
    """Every metric the alerts and the dashboard query is one the service exports."""
    registry = CollectorRegistry()
    ServiceMetrics(registry)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum", ""),
        "gauge": ("",),
    }
    exported = {
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    }
    for path in (CHART / "files" / "alerts.yaml", CHART / "files" / "dashboard.json"):
        used = _metric_names(path.read_text())
        assert used, path
        assert used <= exported, f"{path.name}: unknown metrics {sorted(used - exported)}"


def test_alert_rules_pass_promtool_check(tools: dict[str, Path]) -> None:
    """`promtool check rules`: the rule file is valid Prometheus."""
    import subprocess

    result = subprocess.run(
        [str(tools["promtool"]), "check", "rules", str(CHART / "files" / "alerts.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_alerts_fire_when_they_should_and_not_otherwise(tools: dict[str, Path]) -> None:
    """`promtool test rules`: each alert against synthetic series (alerts_test.yaml)."""
    import subprocess

    result = subprocess.run(
        [str(tools["promtool"]), "test", "rules", "alerts_test.yaml"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
