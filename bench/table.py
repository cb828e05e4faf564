"""One row of the table ``make bench`` prints: what each scenario module reports for itself
(``rows(result)``), so a new figure is a new module and the table needs no edit."""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
    key: str  # the row name: cpu, a, b, c, m, ...
    measure: str
    value: object
    target: str = ""  # as the issue states it ("<= 100"); empty for context rows
    met: bool | None = None  # None: no target, or nothing measured


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def render(rows: list[Row]) -> str:
    lines = [f"{'':4} {'measure':<60} {'value':>10}  {'target':<10} verdict", "-" * 96]
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: ""}[row.met]
        lines.append(f"{row.key:4} {row.measure:<60} {row.value!s:>10}  {row.target:<10} {verdict}")
    return "\n".join(lines)
