"""stripe-mock, Stripe's own mock of its API: built once with ``go install`` from the Go
module proxy into the cache, run on a free port, ready once ``GET /v1/balance`` answers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from . import network
from .component import Component, StackSettings
from .downloads import cache_dir, complete, file_lock, installing
from .shell import run, say, tool

# Newest stripe-mock tag on the Go module proxy.
STRIPE_MOCK_VERSION = "v0.203.0"
STRIPE_TEST_KEY = "sk_test_123"


def _binary() -> Path:
    return cache_dir() / f"stripe-mock-{STRIPE_MOCK_VERSION}" / "stripe-mock"


def install_stripe_mock() -> Path:
    """Return the stripe-mock binary, building it with ``go install`` on first use."""
    binary = _binary()
    gowork = cache_dir() / "go"
    with file_lock(cache_dir() / ".lock-stripe-mock"):
        if not complete(binary.parent):
            say(f"stripe-mock: building {STRIPE_MOCK_VERSION} with go install (first run only)...")
            with installing(binary.parent) as tmp:
                env = {
                    **os.environ,
                    "GOBIN": str(tmp),
                    "GOMODCACHE": str(gowork / "mod"),
                    "GOCACHE": str(gowork / "build"),
                    # -modcacherw: the module cache is deleted afterwards, which needs write bits.
                    "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -modcacherw").strip(),
                    "GOTOOLCHAIN": "local",
                    "CGO_ENABLED": "0",
                }
                run(
                    [
                        tool("go"),
                        "install",
                        f"github.com/stripe/stripe-mock@{STRIPE_MOCK_VERSION}",
                    ],
                    "stripe-mock: go install",
                    env=env,
                    cwd=cache_dir(),
                )
            shutil.rmtree(gowork, ignore_errors=True)
    return binary


def prepare(dir: Path, state: dict[str, Any], settings: StackSettings) -> None:
    state["stripe-mock"] = {"port": network.reuse_or_free(state.get("stripe-mock", {}).get("port"))}


def command(dir: Path, state: dict[str, Any]) -> list[str]:
    port = state["stripe-mock"]["port"]
    # Without -https-addr it would also listen on 0.0.0.0:12112.
    return [
        str(_binary()),
        "-http-addr",
        f"127.0.0.1:{port}",
        "-https-addr",
        "127.0.0.1:0",
    ]


def answers(port: int) -> bool:
    return network.http_ok(
        f"http://127.0.0.1:{port}/v1/balance",
        {"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
    )


STRIPE_MOCK = Component(
    name="stripe-mock",
    env_key="STRIPE_API_BASE",
    address_template="http://127.0.0.1:{port}",
    workdir="logs",
    ready_timeout_s=30.0,
    prepare=prepare,
    command=command,
    probe=answers,
)
