"""Each outside system has one adapter: only it imports that system's client library.

`make lint` holds the same rule as import-linter's forbidden contracts (pyproject.toml); this
test says it in the finer grain the contracts cannot: one module for `stripe` and `redis`."""

from __future__ import annotations

import ast

import pytest

from tests.support.stack import ROOT


def modules_importing(library: str) -> set[str]:
    found = set()
    for path in (ROOT / "consumer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(name == library or name.startswith(f"{library}.") for name in names):
                found.add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    ("library", "adapter"),
    [
        ("redis", "consumer/shared_state/redis_client.py"),
        ("stripe", "consumer/stripe/gateway.py"),
        ("aiokafka", "consumer/kafka/"),
    ],
)
def test_only_the_adapter_imports_its_library(library: str, adapter: str) -> None:
    """Redis and Stripe are each reached through exactly one module, Kafka through one package
    (whose records module stays free of aiokafka)."""
    found = modules_importing(library)
    assert found, f"no module imports {library}"
    assert {path for path in found if not path.startswith(adapter)} == set()
    if not adapter.endswith("/"):
        assert found == {adapter}
    else:
        assert f"{adapter}records.py" not in found


def test_the_scan_sees_imports() -> None:
    """The scan finds a real import (so an empty answer above would mean something)."""
    assert "consumer/observability/http.py" in modules_importing("aiohttp")
