"""Starting components side by side: spawn each (slowest first), then wait until every one
answers; when one fails, stop all that this start spawned."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import processes, stack_dir
from .component import Component, StackSettings
from .shell import StackError, say

# Slowest first; Kafka last, as formatting its storage takes a JVM start of its own.
START_ORDER = ("conductor", "stripe-mock", "redis", "redis-cluster", "kafka")


class Launch:
    """A component just spawned: what to wait for, and since when."""

    def __init__(
        self, dir: Path, component: Component, state: dict[str, Any], fresh_log: bool
    ) -> None:
        self.component = component
        self.name = component.name
        self.log = processes.log_path(dir, self.name)
        self.marker = processes.marker(dir, self.name)
        if fresh_log:
            self.log.unlink(missing_ok=True)
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.started = time.monotonic()
        if component.before_spawn is not None:
            component.before_spawn(dir)
        command = component.command(dir, state)
        self.pid = processes.spawn(command, self.log, dir / component.workdir, self.marker)
        stack_dir.write_atomic(processes.pid_file(dir, self.name), f"{self.pid}\n")

    def check(self, state: dict[str, Any]) -> float | None:
        """Seconds since the start once it answers; None while starting; raise if it failed."""
        ready_line = self.component.ready_line
        answers = self.component.answers(state)
        if ready_line is not None:
            answers = answers and processes.log_has(self.log, self.offset, ready_line)
        elapsed = time.monotonic() - self.started
        if answers:
            return elapsed
        timeout = self.component.ready_timeout_s
        if not processes.is_ours(self.pid, self.marker):
            problem = "exited during start-up"
        elif elapsed > timeout:
            problem = f"not ready after {timeout:.0f} s"
        else:
            return None
        last_lines = processes.log_tail(self.log)
        raise StackError(f"{self.name}: {problem}; last lines of {self.log}:\n{last_lines}")


def _start_rank(component: Component) -> int:
    """Its place in START_ORDER; a cluster's nodes (kafka-1...) start last, as Kafka does."""
    name = component.name
    return START_ORDER.index(name) if name in START_ORDER else len(START_ORDER)


def wait_ready(launches: list[Launch], state: dict[str, Any]) -> None:
    pending = list(launches)
    while pending:
        for launch in list(pending):
            elapsed = launch.check(state)
            if elapsed is not None:
                pending.remove(launch)
                address = launch.component.address(state)
                say(f"{launch.name}: up at {address} ({elapsed:.1f}s)")
        time.sleep(0.2)


def restart_and_wait(dir: Path, component: Component, state: dict[str, Any]) -> float:
    """Start one stopped component again (its log kept) and wait until it answers; stop it
    if it does not. The seconds it took."""
    launch = Launch(dir, component, state, fresh_log=False)
    try:
        wait_ready([launch], state)
    except BaseException:
        processes.stop({launch.pid: launch.marker}, timeout=10.0)
        raise
    return time.monotonic() - launch.started


def start_and_wait(
    dir: Path,
    state: dict[str, Any],
    components: list[Component],
    settings: StackSettings,
    fresh: bool,
) -> None:
    """Start the components side by side and wait for all; on failure stop them."""
    launches: list[Launch] = []
    try:
        for component in components:  # Kafka first: Conductor's configuration needs its address
            component.prepare(dir, state, settings)
        stack_dir.save_state(dir, state)
        for component in sorted(components, key=_start_rank):
            launches.append(Launch(dir, component, state, fresh_log=fresh))
        wait_ready(launches, state)
    except BaseException:
        processes.stop({launch.pid: launch.marker for launch in launches}, timeout=10.0)
        raise
