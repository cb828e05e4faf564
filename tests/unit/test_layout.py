"""The rules of consumer/'s layout that no linter holds: small modules, short functions, and a
docstring on every package saying what lives there and what it may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from consumer.cli.layout import layers, summary

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "consumer"
MODULES = sorted(PACKAGE.rglob("*.py"))
PACKAGES = sorted(path.parent for path in PACKAGE.rglob("__init__.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Data tables, longer by nature: one line per metric, one line per setting.
TABLES = {
    "consumer/observability/metrics.py:ServiceMetrics.__init__",
    "consumer/settings/service.py:load_settings",
}


def functions(path: Path) -> dict[str, int]:
    """Each function's qualified name and length in lines."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found[name] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, f"{name}.")

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_400_lines(path: Path) -> None:
    """A module a reader can hold in mind: at most 400 lines."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it"


def test_no_function_is_over_60_lines() -> None:
    """Functions stay under 60 lines, except the data tables named above."""
    long = {
        f"{path.relative_to(ROOT)}:{name}": length
        for path in MODULES
        for name, length in functions(path).items()
        if length > MAX_FUNCTION_LINES
    }
    assert set(long) <= TABLES, f"too long: {long}"


def test_the_size_checks_see_a_long_module(tmp_path: Path) -> None:
    """The function scan measures what it should (so a pass above means something)."""
    source = tmp_path / "long.py"
    source.write_text("class A:\n    def f(self) -> None:\n" + "        pass\n" * 70)
    assert functions(source) == {"A.f": 71}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_says_what_lives_there_and_what_it_may_import(package: Path) -> None:
    """Each package's docstring opens with two or three lines naming its contents and what it
    may import (the README's layout is generated from them)."""
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text("utf-8")))
    assert docstring, f"{package.relative_to(ROOT)} has no docstring"
    first = docstring.split("\n\n", 1)[0]
    if package != PACKAGE:  # the root's docstring is the project's one-line description
        assert 2 <= len(first.splitlines()) <= 3, first
        assert "import" in summary(package).lower(), f"{package.relative_to(ROOT)}: {first}"


def test_every_top_level_package_has_a_layer() -> None:
    """The layers contract names every child of consumer/ (import-linter checks the arrows;
    this says where to add a new one)."""
    named = {name for layer in layers(ROOT / "pyproject.toml") for name in layer}
    children = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"} | {
        p.name for p in PACKAGES if p.parent == PACKAGE
    }
    assert children == named
