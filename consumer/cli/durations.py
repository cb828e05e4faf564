"""A duration on the command line, ``90s``, ``30m``, ``6h`` or ``7d``: what ``dlq --since``
and ``reconcile --since`` both take."""

from __future__ import annotations

import re
from typing import Final

_DURATION: Final = re.compile(r"(?P<n>\d+)(?P<unit>[smhd])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int | None:
    """The seconds ``text`` names, or None when it is no such duration."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    return int(match["n"]) * _UNIT_SECONDS[match["unit"]]
