"""Command line: ``python -m consumer <command>``.

- ``run``: run the service (configuration from the environment; see the README).
- ``check``: validate the configuration and reach Kafka; exit non-zero with the reason.
- ``schema``: write the JSON Schemas of every request and of the reply to ``schemas/``.
- ``docs``: rewrite the README's operation table (from the request Structs) and its project
  layout (from the packages' docstrings).
- ``send``: publish one request (JSON) and print its reply.
- ``reconcile``: delivered meter usage against Stripe's event summaries (exit 1 on drift).
- ``demo``: publish one request per operation, as Conductor would, and print a table.
- ``dlq list|show|replay``: the dead-letter topic: counts per reason, one record with its
  provenance, replay to the source topic (dry run unless ``--execute``).
- ``conductor register --url URL``: register the event handlers and example workflows.
- ``conductor write``: write them as JSON files (``deploy/conductor/``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from consumer.settings import ConfigurationProblem, Settings, SettingsError, load_settings


def _settings() -> Settings | None:
    """The validated settings, or None after printing which variable is wrong."""
    try:
        return load_settings(os.environ)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None


def _run() -> int:
    """0 after a clean stop; 2 for a configuration error (a value that does not parse, or
    one the brokers refuse), as one log line naming the setting; 1 for anything else."""
    from consumer.app import redactor_for, run_service, tune_garbage_collector
    from consumer.observability.logs import configure_logging, get_logger

    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.log_format, redactor_for(settings))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_service(settings, stop)

    tune_garbage_collector()
    try:
        _event_loop_runner()(main())
    except ConfigurationProblem as problem:
        get_logger().error(
            f"configuration error: {problem.setting}",
            extra={"setting": problem.setting, "cause": problem.cause, "exit_code": 2},
        )
        return 2
    except Exception:
        get_logger().exception("the service failed", extra={"exit_code": 1})
        return 1
    return 0


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where it is installed (Linux, macOS), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _add_reconcile(commands: Any) -> None:
    reconcile = commands.add_parser(
        "reconcile", help="compare delivered meter usage with Stripe's event summaries"
    )
    reconcile.add_argument("--since", default="6h", help="how far back: 90m, 6h, 2d")
    reconcile.add_argument("--tolerance", type=float, default=None, help="drift allowed per row")
    reconcile.add_argument("--integration", default="default")


def _reconcile(args: argparse.Namespace) -> int:
    from consumer.cli.reconcile import reconcile_command

    settings = _settings()
    if settings is None:
        return 2
    tolerance = args.tolerance
    if tolerance is None:
        tolerance = settings.meter_verdicts.reconcile_tolerance
    return asyncio.run(reconcile_command(settings, args.since, tolerance, args.integration))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the service")
    commands.add_parser("check", help="validate configuration and reach Kafka")
    schema = commands.add_parser("schema", help="write JSON Schemas")
    schema.add_argument("--out", default="schemas")
    docs = commands.add_parser("docs", help="rewrite the README's operation table and layout")
    docs.add_argument("--readme", default="README.md")
    send = commands.add_parser("send", help="publish one request and print its reply")
    send.add_argument("request", help="the request as JSON")
    send.add_argument("--key", default=None)
    send.add_argument("--timeout", type=float, default=30.0)
    demo = commands.add_parser("demo", help="one request per operation, printed as a table")
    demo.add_argument("--timeout", type=float, default=60.0)
    _add_reconcile(commands)
    from consumer.cli import dlq
    from consumer.conductor import commands as conductor_commands

    dlq.add_commands(commands)
    conductor_commands.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.command == "run":
        return _run()
    if args.command == "check":
        from consumer.cli.check import check_command

        settings = _settings()
        return 2 if settings is None else check_command(settings)
    if args.command == "schema":
        from consumer.cli.generated_docs import write_schemas

        write_schemas(args.out)
        return 0
    if args.command == "docs":
        from consumer.cli.generated_docs import write_readme_sections

        write_readme_sections(args.readme)
        return 0
    if args.command == "send":
        from consumer.cli.send import send_one

        return asyncio.run(send_one(args.request, args.key, args.timeout))
    if args.command == "dlq":
        from consumer.cli import dlq

        return asyncio.run(dlq.dlq_command(args))
    if args.command == "conductor":
        from consumer.conductor import commands as conductor_commands

        return conductor_commands.run(args)
    if args.command == "reconcile":
        return _reconcile(args)
    if args.command == "demo":
        from consumer.cli.demo import demo_command

        return asyncio.run(demo_command(args.timeout))
    return 2


if __name__ == "__main__":
    sys.exit(main())
