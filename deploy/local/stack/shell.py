"""Running a command, finding a tool, telling the user: what every part of the stack does,
and the one error it raises."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any


class StackError(Exception):
    """A component could not be installed, started or stopped; the message says which."""


def say(message: str) -> None:
    print(message, flush=True)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(cmd: list[str], what: str, **kwargs: Any) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise StackError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{tail(proc.stdout + proc.stderr)}"
        )
    return str(proc.stdout)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not on PATH; it is needed to install the local stack")
    return found


def as_root(cmd: list[str]) -> list[str]:
    """cmd prefixed with sudo when this process is not root (apt-get, debootstrap, chroot)."""
    return cmd if os.geteuid() == 0 else [tool("sudo"), *cmd]
