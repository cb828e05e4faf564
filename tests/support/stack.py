"""The real local stack for the tests: Kafka (KRaft) and stripe-mock from deploy/local/stack/,
and the project's Stripe stand-in, each started once per test session in a private directory.

Set ``STACK_ENV_FILE`` to a running stack's ``stack.env`` (``make up`` writes ``.local/stack.env``)
to reuse it instead of starting one: a faster loop while developing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_local_script(name: str) -> ModuleType:
    """Import ``deploy/local/<name>.py``, or the package ``deploy/local/<name>/``, as
    ``local_<name>`` (deploy/local is no package, nor on sys.path)."""
    module_name = f"local_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    package = ROOT / "deploy/local" / name
    if package.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
    else:
        spec = importlib.util.spec_from_file_location(module_name, package.with_suffix(".py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_stack_module() -> ModuleType:
    return load_local_script("stack")


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def add_conductor(directory: Path) -> dict[str, str]:
    """Conductor joins a running stack (slow to start: only the e2e tier asks for it)."""
    reuse = os.environ.get("STACK_ENV_FILE")
    if reuse:
        running = read_env_file(Path(reuse))
        if "CONDUCTOR_URL" not in running:
            raise RuntimeError(f"{reuse} has no CONDUCTOR_URL; start the stack with Conductor")
        return running
    env: dict[str, str] = load_stack_module().up(directory, conductor=True)
    return env


@contextlib.contextmanager
def local_stack(directory: Path, *, conductor: bool = False) -> Iterator[dict[str, str]]:
    reuse = os.environ.get("STACK_ENV_FILE")
    if reuse:
        running = read_env_file(Path(reuse))
        if conductor and "CONDUCTOR_URL" not in running:
            raise RuntimeError(f"{reuse} has no CONDUCTOR_URL; start the stack with Conductor")
        yield running
        return
    stack = load_stack_module()
    env: dict[str, str] = stack.up(directory, conductor=conductor, partitions=3)
    try:
        yield env
    finally:
        stack.down(directory)


@contextlib.contextmanager
def secured_kafka(directory: Path) -> Iterator[dict[str, str]]:
    """A private broker with PLAINTEXT (super user), SASL_SSL/SCRAM-SHA-512 and SSL
    (client certificate) listeners under ACLs; its stack.env, and STACK_DIR. Never the
    shared stack's."""
    stack = load_stack_module()
    env: dict[str, str] = stack.up(
        directory, conductor=False, partitions=3, secured=True, only=("kafka",)
    )
    try:
        yield {**env, "STACK_DIR": str(directory)}
    finally:
        stack.down(directory)


class StandIn:
    """The Stripe stand-in, in its own process (so it never competes with the test's loop)."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy/local/stripe_standin"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("Listening on "):
            raise RuntimeError(f"stand-in did not start: {line!r}; see {log}")
        self.url = line.split()[-1]

    def close(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


async def standin_request(url: str, method: str, path: str, body: Any = None) -> Any:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body) as r,
    ):
        r.raise_for_status()
        return await r.json()


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
