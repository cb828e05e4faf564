"""The anchor: what a user writes by hand. One aiokafka loop, one awaited Stripe call per
record (the official SDK's async client), then the reply, then the commit.

This file imports aiokafka and stripe directly on purpose: it is the baseline being measured,
not part of the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aiokafka
import stripe

from bench.baselines.plain_kafka import plain_consumer


async def run(
    *, bootstrap: str, topic: str, reply_topic: str, group: str, api_base: str, count: int
) -> None:
    consumer = plain_consumer(bootstrap, topic, group)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    client = stripe.StripeClient("sk_test_123", base_addresses={"api": api_base})
    await consumer.start()
    await producer.start()
    try:
        done = 0
        while done < count:
            record = await consumer.getone()
            request = json.loads(record.value)
            charge = await client.v1.charges.create_async(
                params={
                    "amount": request["amount"],
                    "currency": request["currency"],
                    "source": request["source"],
                }
            )
            reply = {
                "taskId": request.get("taskId"),
                "status": "COMPLETED",
                "output": charge.to_dict(),
            }
            await producer.send_and_wait(reply_topic, json.dumps(reply).encode(), key=record.key)
            await consumer.commit()
            done += 1
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "reply-topic", "group", "api-base"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(
        run(
            bootstrap=args.bootstrap,
            topic=args.topic,
            reply_topic=args.reply_topic,
            group=args.group,
            api_base=args.api_base,
            count=args.count,
        )
    )


if __name__ == "__main__":
    main()
