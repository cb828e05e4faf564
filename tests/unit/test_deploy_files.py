"""The files Docker users run: what they mount exists, what they configure the service
accepts, and the image is non-root with an exec-form entrypoint (SIGTERM reaches Python)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from consumer.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_mounts_files_that_exist() -> None:
    """Every bind mount's source is in the repository."""
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} missing"


def test_compose_service_configuration_is_valid() -> None:
    """The service's environment in docker-compose passes the service's own validation."""
    environment = {
        k: str(v) for k, v in compose()["services"]["stripe-consumer"]["environment"].items()
    }
    settings = load_settings(environment)
    assert settings.stripe_api_base == "http://stripe-mock:12111"
    assert settings.redis_url is not None


def test_compose_prometheus_loads_the_charts_alerts_and_grafana_its_dashboard() -> None:
    """One source for alerts and dashboard: the chart's files."""
    services = compose()["services"]
    assert any("files/alerts.yaml" in v for v in services["prometheus"]["volumes"])
    assert any("files/dashboard.json" in v for v in services["grafana"]["volumes"])
    json.loads((ROOT / "deploy/helm/stripe-consumer/files/dashboard.json").read_text())


def test_image_is_non_root_with_exec_form_entrypoint() -> None:
    """USER is numeric and not root; ENTRYPOINT is a JSON array, so the Python process
    itself receives SIGTERM and drains."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)[-1]
    assert user.split(":")[0] not in {"0", "root"}
    entrypoint = re.findall(r"^ENTRYPOINT\s+(.+)$", dockerfile, re.M)[-1]
    assert json.loads(entrypoint) == ["python", "-m", "consumer"]
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile  # read-only root file system
