"""``python -m consumer conductor register|write``: Conductor's side of the integration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from consumer.conductor.assets import all_event_handlers, all_workflows, asset_files
from consumer.conductor.client import ConductorClient, ConductorError
from consumer.settings.kafka import DEFAULT_REPLY_TOPIC, DEFAULT_REQUEST_TOPIC


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    conductor = commands.add_parser("conductor", help="event handlers and example workflows")
    actions = conductor.add_subparsers(dest="conductor_command", required=True)
    register = actions.add_parser("register", help="register with a Conductor server (idempotent)")
    register.add_argument(
        "--url", required=True, help="Conductor's base URL (the API is under /api)"
    )
    register.add_argument("--request-topic", default=DEFAULT_REQUEST_TOPIC)
    register.add_argument("--reply-topic", default=DEFAULT_REPLY_TOPIC)
    register.add_argument("--no-examples", action="store_true", help="event handlers only")
    register.add_argument(
        "--handler-suffix", default="", help="appended to handler names (several reply topics)"
    )
    register.add_argument(
        "--wait-seconds",
        type=float,
        default=90.0,
        help="return once Conductor listens to the reply topic (it picks up new handlers every "
        "60 s), failing after this long; 0: return at once",
    )
    write = actions.add_parser("write", help="write the JSON files to a directory")
    write.add_argument("--out", default="deploy/conductor")


def run(args: argparse.Namespace) -> int:
    if args.conductor_command == "write":
        write_assets(Path(args.out))
        return 0
    client = ConductorClient(args.url)
    handlers = all_event_handlers(args.reply_topic, suffix=args.handler_suffix)
    try:
        lines = client.upsert_event_handlers(handlers)
        if not args.no_examples:
            lines += client.upsert_workflows(all_workflows(args.request_topic, args.reply_topic))
        print("\n".join(lines), flush=True)
        if args.wait_seconds > 0:
            events = {handler["event"] for handler in handlers}
            print(f"waiting for Conductor to listen to {', '.join(sorted(events))}...", flush=True)
            waited = client.wait_listening(events, args.wait_seconds)
            print(f"Conductor listens to it ({waited:.0f} s)")
    except (ConductorError, OSError) as exc:
        print(f"conductor: {exc}")
        return 1
    return 0


def render(document: object) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_assets(out: Path) -> None:
    for name, document in asset_files(DEFAULT_REQUEST_TOPIC, DEFAULT_REPLY_TOPIC).items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document), encoding="utf-8")
