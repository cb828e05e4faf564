"""The ceiling: how fast aiokafka alone consumes the request records and produces one reply
per record (no decoding, no Stripe), with the same delivery settings as the service
(acks=all, idempotent producer, commit after the replies are acknowledged).

Imports aiokafka directly on purpose: this is a yardstick, not the service.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiokafka

from bench.baselines.plain_kafka import plain_consumer


async def run(bootstrap: str, topic: str, reply_topic: str, group: str, count: int) -> float:
    consumer = plain_consumer(bootstrap, topic, group)
    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        started = None
        while done < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            acks = []
            for records in batches.values():
                for record in records:
                    started = started or time.perf_counter()
                    acks.append(
                        await producer.send(reply_topic, b'{"status":"COMPLETED"}', key=record.key)
                    )
            await asyncio.gather(*acks)
            await consumer.commit()
            done += len(acks)
        return done / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "reply-topic", "group"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    rate = asyncio.run(run(args.bootstrap, args.topic, args.reply_topic, args.group, args.count))
    print(f"{rate:.1f}")


if __name__ == "__main__":
    main()
