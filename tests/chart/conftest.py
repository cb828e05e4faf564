"""Chart tier: the Helm chart and the alert rules, checked offline with the real tools."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.stack import ROOT, load_local_script

CHART = ROOT / "deploy" / "helm" / "stripe-consumer"
BASE_VALUES: dict[str, Any] = {
    "kafka": {"bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092"},
    "stripe": {"existingSecret": "stripe-keys"},
}
ALL_ON: dict[str, Any] = {
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
    "podDisruptionBudget": {"enabled": True},
    "autoscaling": {"enabled": True, "kind": "keda"},
    "networkPolicy": {"enabled": True, "egress": [{"ports": [{"port": 9092}, {"port": 443}]}]},
    "redis": {"existingSecret": "redis-url"},
    "kafka": {
        "bootstrapServers": "kafka:9093",
        "securityProtocol": "SASL_SSL",
        "sasl": {"username": "stripe-consumer", "existingSecret": "kafka-sasl"},
        "ssl": {"existingSecret": "kafka-ca"},
    },
}


@pytest.fixture(scope="session")
def tools() -> dict[str, Path]:
    """helm, promtool and the CRDs (`make tools` builds them once; cached after)."""
    installed: dict[str, Path] = load_local_script("tools").install()
    return installed


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in extra.items():
        result[key] = (
            merge(result[key], value)
            if isinstance(value, dict) and isinstance(result.get(key), dict)
            else value
        )
    return result


class Helm:
    def __init__(self, binary: Path, work: Path) -> None:
        self.binary = binary
        self.work = work

    def run(
        self, *args: str, values: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), *args]
        if values is not None:
            path = self.work / f"values-{abs(hash(yaml.safe_dump(values)))}.yaml"
            path.write_text(yaml.safe_dump(values))
            command += ["--values", str(path)]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def template(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.run(
            "template",
            "payments",
            str(CHART),
            "--namespace",
            "payments",
            "--kube-version",
            "1.33.0",
            values=values,
        )
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def helm(tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools["helm"], tmp_path_factory.mktemp("helm"))
