"""``python -m consumer dlq list|show|replay``: the dead-letter topic for the on-call.

- ``list``: count, oldest and newest per ``dlq.reason`` (``--records``: one line each);
- ``show P:O``: one record (DLQ partition:offset), its provenance headers, the decoded error;
- ``replay``: re-publish the selected records to their source topic (or ``--to``) with a
  ``dlq.replayed-from`` header and the replay count; a dry run unless ``--execute``.
  Records replayed ``--max-replays`` times already are refused. No purge: retention does it.

Exit codes, for scripts: 0 done; 1 Kafka could not be read or written; 2 usage or
configuration error; 3 no record matched; 4 some selected records were refused (the rest
were replayed, or would be in a dry run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Final

from tqdm import tqdm

from consumer.cli.dead_letters import (
    DeadLetterView,
    ReplayPlan,
    Selection,
    iso,
    parse_time,
    plan_replay,
    summarize,
)
from consumer.cli.send import client_connection
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import read_to_end
from consumer.kafka.records import DeliveryFailed, OutboundRecord
from consumer.settings import ClientSettings, SettingsError, load_client_settings

OK: Final = 0
KAFKA_FAILED: Final = 1
USAGE: Final = 2
NOTHING_MATCHED: Final = 3
SOME_REFUSED: Final = 4
DEFAULT_MAX_REPLAYS: Final = 3
_BAR_FROM: Final = 20  # records: a shorter replay prints no progress bar


def add_commands(commands: Any) -> None:
    """The ``dlq`` command and its subcommands, on the top-level parser's subparsers."""
    dlq = commands.add_parser(
        "dlq",
        help="list, show and replay dead letters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="count per reason, oldest and newest")
    _add_filters(listing)
    listing.add_argument("--records", action="store_true", help="one line per record")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = actions.add_parser("show", help="one record with its headers and decoded error")
    show.add_argument("position", help="the record's DLQ partition:offset (from `list`)")
    replay = actions.add_parser("replay", help="re-publish records (dry run by default)")
    replay.add_argument("positions", nargs="*", help="DLQ partition:offset of each record")
    _add_filters(replay)
    replay.add_argument("--to", default=None, help="publish here instead of the source topic")
    replay.add_argument("--execute", action="store_true", help="publish (default: dry run)")
    replay.add_argument(
        "--max-replays",
        type=int,
        default=None,
        help="refuse records replayed this many times already "
        f"(default: $CONSUMER_DLQ_MAX_REPLAYS or {DEFAULT_MAX_REPLAYS})",
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", action="append", default=[], help="dlq.reason (repeatable)")
    parser.add_argument(
        "--source-topic", action="append", default=[], help="dlq.source.topic (repeatable)"
    )
    parser.add_argument("--since", default=None, help="ISO 8601 time or an age: 30m, 2h, 7d")
    parser.add_argument("--until", default=None, help="ISO 8601 time or an age: 30m, 2h, 7d")


def _selection(args: argparse.Namespace, positions: list[str]) -> Selection:
    return Selection(
        positions=frozenset(positions),
        reasons=frozenset(getattr(args, "reason", [])),
        source_topics=frozenset(getattr(args, "source_topic", [])),
        since=parse_time(args.since) if getattr(args, "since", None) else None,
        until=parse_time(args.until) if getattr(args, "until", None) else None,
    )


async def dlq_command(args: argparse.Namespace) -> int:
    """Run ``dlq list|show|replay``; returns the exit code."""
    try:
        settings = load_client_settings(os.environ)
        positions = (
            [args.position] if args.dlq_command == "show" else getattr(args, "positions", [])
        )
        selection = _selection(args, positions)
    except (SettingsError, ValueError) as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return USAGE
    try:
        records = await read_to_end(client_connection(settings), settings.dlq_topic)
    except (DeliveryFailed, TimeoutError, OSError) as exc:
        print(f"dlq: could not read {settings.dlq_topic}: {exc}", file=sys.stderr)
        return KAFKA_FAILED
    letters = selection.select(records)
    if not letters:
        print(f"no record in {settings.dlq_topic} matches", file=sys.stderr)
        return NOTHING_MATCHED
    if args.dlq_command == "list":
        _print_list(settings.dlq_topic, letters, records=args.records, as_json=args.json)
        return OK
    if args.dlq_command == "show":
        _print_show(letters[0])
        return OK
    max_replays = _max_replays(args.max_replays)
    if max_replays is None:
        print("dlq: --max-replays (or CONSUMER_DLQ_MAX_REPLAYS) must be 1 or more", file=sys.stderr)
        return USAGE
    return await _replay(settings, letters, args, max_replays)


def _max_replays(given: int | None) -> int | None:
    """The flag, else the environment, else the default; None when not a positive number."""
    text = str(given) if given is not None else os.environ.get("CONSUMER_DLQ_MAX_REPLAYS")
    if text is None:
        return DEFAULT_MAX_REPLAYS
    return int(text) if text.strip().isdigit() and int(text) >= 1 else None


def _print_list(topic: str, letters: list[DeadLetterView], *, records: bool, as_json: bool) -> None:
    summaries = summarize(letters)
    if as_json:
        document = {
            "topic": topic,
            "total": len(letters),
            "reasons": [
                {
                    "reason": s.reason,
                    "count": s.count,
                    "oldest": iso(s.oldest_ms),
                    "newest": iso(s.newest_ms),
                    "source_topics": list(s.source_topics),
                }
                for s in summaries
            ],
        }
        if records:
            document["records"] = [_line_fields(letter) for letter in letters]
        print(json.dumps(document, indent=2))
        return
    print(f"{len(letters)} record{'' if len(letters) == 1 else 's'} in {topic}")
    print(f"{'reason':<20} {'count':>7}  {'oldest':<25} {'newest':<25} source topics")
    for s in summaries:
        print(
            f"{s.reason:<20} {s.count:>7}  {iso(s.oldest_ms):<25} {iso(s.newest_ms):<25} "
            f"{', '.join(s.source_topics)}"
        )
    if records:
        print()
        for letter in letters:
            fields = _line_fields(letter)
            print(
                f"{fields['position']:<10} {fields['time']:<25} {fields['reason']:<16} "
                f"{fields['source']:<30} replays={fields['replays']} {fields['detail']}"
            )


def _line_fields(letter: DeadLetterView) -> dict[str, Any]:
    return {
        "position": letter.position,
        "time": iso(letter.record.timestamp_ms),
        "reason": letter.reason,
        "source": f"{letter.source_topic}:{letter.header('dlq.source.partition')}:"
        f"{letter.header('dlq.source.offset')}",
        "replays": letter.replay_count,
        "detail": (letter.header("dlq.detail") or "")[:120],
    }


def _print_show(letter: DeadLetterView) -> None:
    record = letter.record
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    print(f"position: {letter.position} (partition {record.partition}, offset {record.offset})")
    print(f"time:     {iso(record.timestamp_ms)}")
    print(f"key:      {key}")
    print("provenance:")
    for name, value in letter.provenance():
        print(f"  {name}: {value}")
    others = [(k, v) for k, v in record.headers if not k.startswith("dlq.")]
    if others:
        print("headers:")
        for name, raw in others:
            print(f"  {name}: {raw.decode('utf-8', 'replace')}")
    print(f"decoded error: {letter.decoded_error()}")
    print("value:")
    print(_readable(record.value))


def _readable(value: bytes | None) -> str:
    if not value:
        return "  (empty)"
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError):
        return "  " + repr(value[:2000])


async def _replay(
    settings: ClientSettings,
    letters: list[DeadLetterView],
    args: argparse.Namespace,
    max_replays: int,
) -> int:
    plans = [
        plan_replay(letter, settings.dlq_topic, target=args.to, max_replays=max_replays)
        for letter in letters
    ]
    publishable = [p.record for p in plans if p.record is not None]
    for plan in plans:
        _print_plan(plan, dry_run=not args.execute)
    if args.execute and publishable:
        try:
            await _publish(settings, publishable)
        except DeliveryFailed as exc:
            print(f"dlq: replay stopped, Kafka refused a record: {exc}", file=sys.stderr)
            return KAFKA_FAILED
    refused = len(plans) - len(publishable)
    verb = "replayed" if args.execute else "would replay (dry run; --execute to publish)"
    print(f"{verb}: {len(publishable)}; refused: {refused}")
    return SOME_REFUSED if refused else OK


def _print_plan(plan: ReplayPlan, *, dry_run: bool) -> None:
    if plan.record is None:
        print(f"refused {plan.letter.position}: {plan.refusal}")
    elif dry_run:
        print(
            f"would replay {plan.letter.position} ({plan.letter.reason}) to {plan.record.topic} "
            f"(replay {plan.letter.replay_count + 1})"
        )


async def _publish(settings: ClientSettings, records: list[OutboundRecord]) -> None:
    """Publish in order, each acknowledged before the next (a stop leaves a clear point)."""
    sink = RecordSink(client_connection(settings))
    await sink.start()
    try:
        with tqdm(
            total=len(records),
            unit="record",
            desc="replaying",
            file=sys.stderr,
            disable=len(records) < _BAR_FROM or None,  # None: no bar when not a terminal
        ) as bar:
            for record in records:
                await sink.send(record)
                bar.update()
    finally:
        await sink.stop()
