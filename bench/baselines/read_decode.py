"""The meter scenario's yardstick: how fast aiokafka alone reads a topic and decodes each
record (msgspec, into a plain object). Imports aiokafka directly on purpose."""

from __future__ import annotations

import argparse
import asyncio
import time

import msgspec

from bench.baselines.plain_kafka import plain_consumer


async def run(*, bootstrap: str, topic: str, group: str, count: int) -> float:
    consumer = plain_consumer(bootstrap, topic, group)
    decoder = msgspec.json.Decoder()
    await consumer.start()
    try:
        done, started = 0, None
        while done < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                started = started or time.perf_counter()
                for record in records:
                    decoder.decode(record.value)
                done += len(records)
        return done / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "group"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    rate = asyncio.run(
        run(bootstrap=args.bootstrap, topic=args.topic, group=args.group, count=args.count)
    )
    print(f"{rate:.1f}")


if __name__ == "__main__":
    main()
