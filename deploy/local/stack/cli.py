"""The stack's command line, ``python3 deploy/local/stack <command>`` (``<command> --help``
for flags)::

    up [--dir DIR] [--no-conductor] [--partitions N] [--secured | --brokers N]
                                                        install what is missing, start, wait
    down [--dir DIR] [--keep-data]                      stop everything started in DIR
    status [--dir DIR]                                  exit 0 only if all started parts are up
    install [--no-conductor]                            only fill the cache
    restart-kafka | kill-kafka | start-kafka | stop-kafka [--dir DIR]
                                                        broker faults, same port and data
    kill-broker | start-broker --node N [--dir DIR]     one node of a cluster (--brokers)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import kafka_cluster, stack_dir
from .lifecycle import (
    BY_NAME,
    DEFAULT_PARTITIONS,
    down,
    install,
    kill_kafka,
    restart_kafka,
    start_kafka,
    status,
    stop_kafka,
    up,
)
from .shell import StackError, say

DESCRIPTION = "Install, start, check and stop the real local stack, without Docker."


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
    parser = argparse.ArgumentParser(description=DESCRIPTION)
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
    up_cmd.add_argument(
        "--secured",
        action="store_true",
        help="also SASL_SSL (SCRAM-SHA-512) and SSL (client certificate) listeners, with ACLs",
    )
    up_cmd.add_argument(
        "--brokers",
        type=int,
        default=1,
        help="a replicated KRaft cluster of N nodes (RF 3, min.insync.replicas 2); no Conductor",
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
    for name, what in (("kill-broker", "SIGKILL"), ("start-broker", "start again")):
        node = with_dir(name, f"{what} one node of a cluster (up --brokers N)")
        node.add_argument("--node", type=int, required=True, help="its node id (1..N)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "install":
            install(conductor=not args.no_conductor)
        elif args.command == "up":
            started = time.monotonic()
            env = up(
                args.dir,
                conductor=not args.no_conductor,
                partitions=args.partitions,
                secured=args.secured,
                brokers=args.brokers,
            )
            for key, value in env.items():
                say(f"  {key}={value}")
            env_file = stack_dir.resolve(args.dir) / "stack.env"
            say(f"wrote {env_file} ({time.monotonic() - started:.1f}s)")
        elif args.command == "down":
            down(args.dir, keep_data=args.keep_data)
        elif args.command == "kill-broker":
            kafka_cluster.kill_node(args.dir, args.node)
        elif args.command == "start-broker":
            say(f"kafka-{args.node}: ready in {kafka_cluster.start_node(args.dir, args.node):.1f}s")
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
