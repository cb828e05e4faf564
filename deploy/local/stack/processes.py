"""The stack's processes. Each runs detached, in its own session and process group, with
``STRIPE_CONSUMER_STACK=<DIR>/<name>`` in its environment: that marker is how a pid is
recognised as ours (a pid file whose process is gone, a zombie or someone else's is treated
as down) and how strays are found. Pid files are ``DIR/pids/<name>.pid``, output goes to
``DIR/logs/<name>.log``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .shell import StackError, tail

MARKER_ENV = "STRIPE_CONSUMER_STACK"
STOP_TIMEOUT_S = 30.0


def marker(dir: Path, name: str) -> str:
    return f"{MARKER_ENV}={dir}/{name}"


def log_path(dir: Path, name: str) -> Path:
    return dir / "logs" / f"{name}.log"


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        data = log.read_bytes()[-200_000:]
    except OSError:
        return "(no log)"
    return tail(data.decode(errors="replace"), lines)


def log_has(log: Path, offset: int, needle: bytes) -> bool:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return needle in handle.read()
    except OSError:
        return False


def spawn(cmd: list[str], log: Path, cwd: Path, marker: str) -> int:
    """Start cmd detached (new session, reparented to init), output appended to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    key, _, value = marker.partition("=")
    # sh backgrounds the command and exits at once: the process outlives this script, is not
    # our child (no zombie, no Popen left running) and keeps sh's process group, whose id we
    # signal in stop.
    launcher = 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'
    proc = subprocess.run(
        ["/bin/sh", "-c", launcher, "sh", str(log), *cmd],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, key: value},
        start_new_session=True,
        check=True,
    )
    return int(proc.stdout.strip())


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_ours(pid: int, marker: str) -> bool:
    state = _proc_state(pid)
    if state is None or state in "ZX":
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return marker.encode() in environ.split(b"\0")


def pid_file(dir: Path, name: str) -> Path:
    return dir / "pids" / f"{name}.pid"


def recorded_pid(dir: Path, name: str) -> int | None:
    try:
        return int(pid_file(dir, name).read_text().strip())
    except (OSError, ValueError):
        return None


def live_pid(dir: Path, name: str) -> int | None:
    pid = recorded_pid(dir, name)
    return pid if pid is not None and is_ours(pid, marker(dir, name)) else None


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        pgid = os.getpgid(pid)
        if pgid == os.getpgrp():  # never signal our own group
            os.kill(pid, sig)
        else:
            os.killpg(pgid, sig)


def wait_gone(pids: list[int], marker_of: Callable[[int], str], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = [pid for pid in remaining if is_ours(pid, marker_of(pid))]
    return remaining


def stop(targets: dict[int, str], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM each pid's process group, then SIGKILL whatever is left after timeout."""
    live = {pid: marker for pid, marker in targets.items() if is_ours(pid, marker)}
    for pid in live:
        signal_group(pid, signal.SIGTERM)
    left = wait_gone(list(live), live.__getitem__, timeout)
    for pid in left:
        signal_group(pid, signal.SIGKILL)
    if wait_gone(left, live.__getitem__, 10.0):
        raise StackError(f"could not stop pids {left}")


def strays(dir: Path, names: Iterable[str]) -> dict[int, str]:
    """Processes marked as belonging to DIR, whatever the pid files say."""
    markers = {marker(dir, name).encode() for name in names}
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for var in (entry / "environ").read_bytes().split(b"\0"):
                if var in markers and _proc_state(int(entry.name)) not in (None, "Z"):
                    found[int(entry.name)] = var.decode()
    return found
