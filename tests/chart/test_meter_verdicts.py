"""The chart's values for Stripe's verdict on meter events: the webhook's signing secrets
from Kubernetes Secrets, an Ingress for the webhook alone (off by default), the poller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumer.settings import load_settings
from tests.chart.conftest import BASE_VALUES, CHART, Helm, merge
from tests.chart.test_chart import KUBERNETES, VARIANTS, by_kind

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]


def _container(docs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    [deployment] = docs["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _config(docs: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    data: dict[str, str] = next(
        c for c in docs["ConfigMap"] if "KAFKA_BOOTSTRAP_SERVERS" in c["data"]
    )["data"]
    return data


def test_webhook_secret_comes_from_the_secret_never_a_value(helm: Helm) -> None:
    """With meterVerdicts.webhook.existingSecret, STRIPE_WEBHOOK_SECRET is read from that
    Secret (its `default` key unless told); without it the variable is absent."""
    plain = _container(by_kind(helm.template(BASE_VALUES)))
    assert "STRIPE_WEBHOOK_SECRET" not in {e["name"] for e in plain.get("env") or []}
    docs = by_kind(helm.template(VARIANTS["meter_webhook"]))
    env = {e["name"]: e for e in _container(docs)["env"]}
    ref = env["STRIPE_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "stripe-webhook", "key": "default"}
    assert "value" not in env["STRIPE_WEBHOOK_SECRET"]
    assert not [v for v in _config(docs).values() if "whsec_" in v]
    other = merge(
        BASE_VALUES, {"meterVerdicts": {"webhook": {"existingSecret": "s", "secretKey": "k"}}}
    )
    env = {e["name"]: e for e in _container(by_kind(helm.template(other)))["env"]}
    assert env["STRIPE_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "k"}


def test_integrations_secrets_are_mounted_where_the_service_reads_them(
    helm: Helm, tmp_path: Path
) -> None:
    """integrationsSecret is mounted read-only at STRIPE_WEBHOOK_SECRETS_DIR; the service
    reads one secret per integration from the files there."""
    values = merge(
        BASE_VALUES, {"meterVerdicts": {"webhook": {"integrationsSecret": "webhook-secrets"}}}
    )
    docs = by_kind(helm.template(values))
    pod = docs["Deployment"][0]["spec"]["template"]["spec"]
    config = _config(docs)
    directory = config["STRIPE_WEBHOOK_SECRETS_DIR"]
    [mount] = [m for m in _container(docs)["volumeMounts"] if m["mountPath"] == directory]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
    assert volumes[mount["name"]] == "webhook-secrets"
    keys, hooks = tmp_path / "stripe", tmp_path / "hooks"
    keys.mkdir()
    hooks.mkdir()
    (keys / "default").write_text("sk_test_51Placeholder")
    (hooks / "billing").write_text("whsec_billing0123456789")
    environ = {
        **config,
        "STRIPE_CREDENTIALS_DIR": str(keys),
        "STRIPE_WEBHOOK_SECRETS_DIR": str(hooks),
    }
    secrets = load_settings(environ).meter_verdicts.webhook_secrets
    assert set(secrets) == {"billing"}


def test_poller_settings_reach_the_service(helm: Helm, tmp_path: Path) -> None:
    """pollSeconds, lookbackHours, metersRefreshSeconds, knownCustomersSeconds, reconcile.*
    and topics.meterErrors become the settings the service reads; the defaults are its own."""
    keys = tmp_path / "stripe"
    keys.mkdir()
    (keys / "default").write_text("sk_test_51Placeholder")
    changed = merge(
        BASE_VALUES,
        {
            "meterVerdicts": {
                "pollSeconds": 0,
                "lookbackHours": 48,
                "metersRefreshSeconds": 300,
                "knownCustomersSeconds": 21600,
                "reconcile": {"everySeconds": 900, "sinceHours": 12, "tolerance": 1},
            },
            "topics": {"meterErrors": "billing.meter-errors"},
        },
    )
    for values, poll, lookback, refresh, known, reconcile, topic in (
        (BASE_VALUES, 60.0, 24.0, 0.0, 0.0, (0.0, 6.0, 0.0), "stripe.meter-errors"),
        (changed, 0.0, 48.0, 300.0, 21600.0, (900.0, 12.0, 1.0), "billing.meter-errors"),
    ):
        config = _config(by_kind(helm.template(values)))
        settings = load_settings({**config, "STRIPE_CREDENTIALS_DIR": str(keys)})
        verdicts = settings.meter_verdicts
        assert (verdicts.poll_seconds, verdicts.lookback_hours) == (poll, lookback)
        assert verdicts.meters_refresh_seconds == refresh
        assert verdicts.known_customers_seconds == known
        every, since, tolerance = reconcile
        assert verdicts.reconcile_every_seconds == every
        assert (verdicts.reconcile_since_hours, verdicts.reconcile_tolerance) == (since, tolerance)
        assert settings.meter_errors_topic == topic


def test_ingress_only_when_enabled_and_only_for_the_webhook(helm: Helm) -> None:
    """No Ingress by default; enabled, it routes only the exact webhook paths to the
    Service's http port (never /metrics or health), and the NetworkPolicy lets the ingress
    controller in."""
    assert "Ingress" not in by_kind(helm.template(BASE_VALUES))
    docs = by_kind(helm.template(VARIANTS["meter_webhook"]))
    [ingress] = docs["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "hooks.example.com"
    paths = rule["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/stripe/webhook", "Exact")]
    [service] = docs["Service"]
    backend = paths[0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    [policy] = docs["NetworkPolicy"]
    selectors = [rule["from"][0]["namespaceSelector"] for rule in policy["spec"]["ingress"]]
    assert {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}} in selectors
    more = merge(
        VARIANTS["meter_webhook"],
        {
            "meterVerdicts": {
                "webhook": {"integrationsSecret": "w", "ingress": {"integrations": ["billing"]}}
            }
        },
    )
    [ingress] = by_kind(helm.template(more))["Ingress"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/stripe/webhook", "/stripe/webhook/billing"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ingress": {"enabled": True}}, "/meterVerdicts/webhook/existingSecret"),
        (
            {"existingSecret": "s", "ingress": {"integrations": ["billing"]}},
            "/meterVerdicts/webhook/integrationsSecret",
        ),
        ({"existingSecret": "Not_A_Name"}, "/meterVerdicts/webhook/existingSecret"),
        ({"ingress": {"paths": ["/metrics"]}}, "paths"),
    ],
)
def test_bad_webhook_values_fail_naming_them(
    values: dict[str, Any], message: str, helm: Helm
) -> None:
    """An Ingress without the signing secret, integrations without their secrets, a bad
    Secret name, an unknown key: install fails naming the value."""
    bad = merge(BASE_VALUES, {"meterVerdicts": {"webhook": values}})
    result = helm.run("template", "payments", str(CHART), "--kube-version", KUBERNETES, values=bad)
    assert result.returncode != 0
    assert message in result.stderr


def test_bad_poller_values_fail(helm: Helm) -> None:
    """A negative poll interval is refused at install time, naming it."""
    bad = merge(BASE_VALUES, {"meterVerdicts": {"pollSeconds": -1}})
    result = helm.run("template", "payments", str(CHART), "--kube-version", KUBERNETES, values=bad)
    assert result.returncode != 0
    assert "/meterVerdicts/pollSeconds" in result.stderr
