"""docker-compose.yml: valid against the Compose specification (its JSON Schema, vendored in
compose_spec/), its consumer service matching the image, and the services whose images can be
built here (Kafka, stripe-mock, Redis, the service) started together with podman-compose."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from consumer.settings import load_settings
from tests.container.support import Podman
from tests.support.process import free_port

pytestmark = [pytest.mark.container, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parent / "compose_spec" / "compose-spec.json"
BUILDABLE = ("kafka", "stripe-mock", "redis")  # and stripe-consumer, started once Kafka is healthy


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    """Every key and value of docker-compose.yml is one the Compose specification allows."""
    assert schema_errors(compose()) == []


def test_the_specification_check_catches_a_misspelt_key() -> None:
    """The schema check is strict: a misspelt service key or a wrong type fails it."""
    document = compose()
    document["services"]["stripe-consumer"]["helthcheck"] = {"test": ["NONE"]}
    document["services"]["stripe-consumer"]["read_only"] = ["yes"]
    errors = schema_errors(document)
    assert any("helthcheck" in e for e in errors)
    assert any("read_only" in e for e in errors)


def json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects in a command's output (podman-compose adds lines of its own)."""
    decoder, found, index = json.JSONDecoder(), [], text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            end = index + 1
        else:
            found.append(value)
        index = text.find("{", end)
    return found


class RecordingEnviron(dict[str, str]):
    """An environment that records which variables the settings look up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match.group(1))


def test_compose_consumer_environment_is_read_by_the_settings() -> None:
    """Every variable the compose file gives the service is one its settings read (a
    misspelt name would be silently ignored), and its stop grace exceeds the drain grace."""
    service = compose()["services"]["stripe-consumer"]
    environ = RecordingEnviron({k: str(v) for k, v in service["environment"].items()})
    settings = load_settings(environ)
    assert set(environ) - environ.read == set()
    assert seconds(service["stop_grace_period"]) > settings.shutdown_grace_seconds
    arg = re.search(r"^ARG BASE_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert arg is not None
    assert service["build"]["args"]["BASE_IMAGE"] == f"${{BASE_IMAGE:-{arg.group(1)}}}"


def test_compose_consumer_service_matches_the_image(images: ModuleType, service_image: str) -> None:
    """The compose service runs the image as the image declares it: its user, a read-only
    root, the health check on the image's HTTP port and /healthz, that port published."""
    service = compose()["services"]["stripe-consumer"]
    config = Podman(images).json("image", "inspect", service_image)[0]["Config"]
    env = dict(entry.split("=", 1) for entry in config["Env"])
    assert service["user"] == config["User"]
    assert service["read_only"] is True
    check = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(service["healthcheck"]["test"]))
    assert check is not None
    assert check.groups() == (env["CONSUMER_HTTP_PORT"], "/healthz")
    assert [port.rsplit(":", 1)[1] for port in service["ports"]] == [env["CONSUMER_HTTP_PORT"]]
    assert f"{env['CONSUMER_HTTP_PORT']}/tcp" in config["ExposedPorts"]


class ComposeProject:
    """podman-compose on docker-compose.yml with the images built here, in its own project."""

    def __init__(self, images: ModuleType, tags: dict[str, str]) -> None:
        self.name = f"sctest{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.podman = Podman(images)
        self.environ = {**self.podman.environ, **tags, "STRIPE_CONSUMER_PORT": str(self.port)}

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        command = ["podman-compose", "-p", self.name, "-f", str(COMPOSE_FILE), *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=self.environ, cwd=ROOT,
            timeout=timeout, check=False,
        )  # fmt: skip

    def up(self, *services: str) -> None:
        result = self.run("up", "-d", "--no-build", "--no-deps", *services)
        assert result.returncode == 0, result.stdout + result.stderr

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def wait_logged(self, service: str, line: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while line not in self.podman.run("logs", self.container(service), check=False):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} did not log {line!r} in {timeout_s}s")
            time.sleep(0.5)

    def wait_healthy(self, service: str, timeout_s: float) -> None:
        """Run the service's own compose health check until it passes (podman runs health
        checks on a timer only under systemd, which these machines do not have)."""
        deadline = time.monotonic() + timeout_s
        while not self.podman.ok("healthcheck", "run", self.container(service)):
            if time.monotonic() > deadline:
                logs = self.podman.run("logs", self.container(service), check=False)
                raise TimeoutError(f"{service} not healthy in {timeout_s}s:\n{logs[-3000:]}")
            time.sleep(1)

    def readyz(self, timeout_s: float) -> int:
        """The service's /readyz through the port compose published on the host."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return int(response.status)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def down(self) -> None:
        """Remove the project's containers at once (how they stop is not under test), then
        its volumes and network."""
        label = f"label=io.podman.compose.project={self.name}"
        ids = self.podman.run("ps", "--all", "--quiet", "--filter", label, check=False).split()
        if ids:
            self.podman.run("rm", "--force", "--time", "0", *ids, check=False)
        self.run("down", "-v")
        self.podman.run("network", "rm", "--force", f"{self.name}_default", check=False)


@pytest.mark.timeout(420)
def test_the_buildable_services_start_together_with_podman_compose(
    images: ModuleType,
    kafka_image: str,
    redis_image: str,
    stripe_mock_image: str,
    service_image: str,
) -> None:
    """From docker-compose.yml itself: Kafka, stripe-mock, Redis and the service start on one
    network, Kafka's and the service's health checks pass, the published port answers
    /readyz, and the README's `send` gets a reply through the broker and stripe-mock."""
    tags = {
        "KAFKA_IMAGE": kafka_image,
        "REDIS_IMAGE": redis_image,
        "STRIPE_MOCK_IMAGE": stripe_mock_image,
        "STRIPE_CONSUMER_IMAGE": service_image,
    }
    project = ComposeProject(images, tags)
    try:
        project.up(*BUILDABLE)
        # podman-compose 1.0 does not wait for `condition: service_healthy`; this does (once
        # the broker says it started: a check run earlier hangs until its own timeout).
        project.wait_logged("kafka", "Kafka Server started", 120)
        project.wait_healthy("kafka", 60)
        project.up("stripe-consumer")
        project.wait_healthy("stripe-consumer", 60)
        assert project.readyz(timeout_s=30) == 200
        sent = project.run(
            "exec", "-T", "stripe-consumer", "python", "-m", "consumer", "send",
            '{"operation": "get_balance"}',
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert [o["status"] for o in json_objects(sent.stdout) if "status" in o] == ["COMPLETED"]
        # The compose file's Redis URL answers from the service's container.
        ping = "import os, redis; print(redis.from_url(os.environ[sys.argv[1]]).ping())"
        consumer = project.container("stripe-consumer")
        answer = project.podman.run(
            "exec", consumer, "python", "-c", f"import sys; {ping}", "CONSUMER_REDIS_URL"
        )
        assert answer.strip() == "True"
    finally:
        project.down()
