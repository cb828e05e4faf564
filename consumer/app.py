"""Start-up and shutdown of the whole service, and its HTTP endpoints.

Start-up order: check the operation table, open the Stripe gateway (HTTP pool), start the
Kafka producer, serve ``/metrics`` ``/healthz`` ``/readyz``, then join the consumer group.
Shutdown runs the other way once ``stop`` is set (SIGTERM): the pipeline stops fetching,
drains within the grace period and commits; then the consumer leaves the group, the producer
flushes, the HTTP pool and server close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumer.engine.pipeline import Pipeline, PipelineLimits
from consumer.engine.processor import RequestProcessor
from consumer.kafka.io import (
    BrokerProbe,
    KafkaConnection,
    RecordSink,
    RecordSource,
    ensure_topics,
)
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.ledgers.protocol import IdentifierLedger
from consumer.metering.sessions import ExecutorSessionCreator, MeterEventSessions
from consumer.metering.transports import SingleEventTransport, StreamTransport
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.observability.redaction import Redactor
from consumer.operations import check_complete
from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection
from consumer.shared_state.wiring import (
    delete_records,
    identifier_ledger,
    rate_limiters,
    redis_connection,
    reply_memory,
)
from consumer.stripe.credential_gate import CredentialGate
from consumer.stripe.deletes import RecordedDeletes
from consumer.stripe.executor import StripeCaller, StripeCallExecutor
from consumer.stripe.gateway import StripeGateway, open_gateway
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimit
from consumer.stripe.retry import RetryPolicy

_log = get_logger()
# The consumer loop fetches at least every 0.2 s; silence this long means it is stuck.
LIVENESS_WINDOW_SECONDS: Final = 60.0


# Young-generation size for the cyclic garbage collector (CPython's default is 700).
GC_YOUNG_GENERATION: Final = 20_000


BROKER_CHECK_SECONDS: Final = 10.0


async def _check_broker_every(broker: BrokerProbe, seconds: float) -> None:
    """Readiness asks the broker itself, not only whether the loop fetched recently."""
    while True:
        await broker.check()
        await asyncio.sleep(seconds)


def tune_garbage_collector() -> None:
    """Fewer, larger young collections, and none over start-up's long-lived objects.

    Most of this service's garbage is freed by reference counting; the cyclic collector
    mostly re-walks live objects (the SDK, aiohttp and aiokafka keep many). Measured with the
    100 ms stand-in on this 2-core machine: about 900 requests/s with CPython's defaults,
    1,100-1,400 with start-up objects frozen and young collections 15-70x rarer (10,000 to
    50,000 measured alike; 20,000 keeps each pause short). Memory stays bounded (the
    benchmark's 100,000-record backlog run).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_GENERATION, 20, 20)


def redactor_for(settings: Settings) -> Redactor:
    secrets = [c.api_key.reveal() for c in settings.credentials.values()]
    if settings.redis_url is not None:
        url = settings.redis_url.reveal()
        secrets += [url, urlsplit(url).password or ""]
    security = settings.kafka_security
    for secret in (security.sasl_password, security.ssl_key_password):
        if secret is not None:
            secrets.append(secret.reveal())
    return Redactor(secrets)


def kafka_connection(settings: Settings) -> KafkaConnection:
    return KafkaConnection(
        settings.kafka_bootstrap_servers, settings.kafka_security, settings.kafka_client_id
    )


@dataclass(slots=True)
class HealthProbe:
    pipeline: Pipeline
    gate: CredentialGate
    broker: BrokerProbe

    def alive(self) -> tuple[bool, str]:
        silent = time.monotonic() - self.pipeline.last_fetch_monotonic
        if silent > LIVENESS_WINDOW_SECONDS:
            return False, f"no Kafka fetch for {silent:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        alive, why = self.alive()
        if not alive:
            return False, why
        if not self.pipeline.group_joined.is_set():
            return False, "not yet a member of the consumer group"
        if not self.broker.reachable:
            return False, "no Kafka broker answers"
        rejected = self.gate.rejected()
        if rejected:
            return False, f"Stripe rejects the key of: {', '.join(sorted(rejected))}"
        return True, "ok"


def _http_app(registry: CollectorRegistry, probe: HealthProbe) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        ok, why = probe.alive()
        return web.json_response({"status": why}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok, why = probe.ready()
        return web.json_response({"status": why}, status=200 if ok else 503)

    app = web.Application()
    app.add_routes(
        [web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)]
    )
    return app


@contextlib.asynccontextmanager
async def _http_server(
    settings: Settings, registry: CollectorRegistry, probe: HealthProbe
) -> AsyncIterator[int]:
    runner = web.AppRunner(_http_app(registry, probe), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    # aiohttp has no public way to learn a port the OS chose (CONSUMER_HTTP_PORT=0, in tests).
    sockets = getattr(site._server, "sockets", None)
    port = sockets[0].getsockname()[1] if sockets else settings.http_port
    try:
        yield int(port)
    finally:
        await runner.cleanup()


def stripe_executor(
    settings: Settings,
    caller: StripeCaller,
    metrics: ServiceMetrics,
    limiters: dict[str, RateLimit] | None = None,
) -> StripeCallExecutor:
    """Rate limiters per credential: the given ones, or this process's share of each."""
    return StripeCallExecutor(
        caller,
        metrics,
        retry=RetryPolicy(budget_seconds=settings.retry_budget_seconds),
        limiters=limiters if limiters is not None else rate_limiters(settings, None, ""),
        locks=ObjectLocks(),
        gate=CredentialGate(settings.credential_probe_seconds),
    )


def meter_batchers(
    settings: Settings,
    gateway: StripeGateway,
    executor: StripeCallExecutor,
    ledger: IdentifierLedger,
    metrics: ServiceMetrics,
) -> tuple[MeterEventBatcher, MeterEventBatcher]:
    """(v1 batcher for meter events on the request topics, the meter topic's batcher).

    The request topics use the v1 endpoint one event at a time (Conductor wants Stripe's
    synchronous validation); the meter topic uses the v2 stream unless CONSUMER_METER_API=v1.
    """
    single_events = MeterEventBatcher(
        SingleEventTransport(executor), ledger, metrics, linger_seconds=0.002, concurrency=64
    )
    if settings.meter_api == "v1":
        return single_events, single_events
    stream = MeterEventBatcher(
        StreamTransport(
            gateway,
            MeterEventSessions(ExecutorSessionCreator(executor)),
            fallback=SingleEventTransport(executor),
        ),
        ledger,
        metrics,
        batch_size=settings.meter_batch_size,
        linger_seconds=settings.meter_linger_seconds,
        concurrency=settings.meter_stream_concurrency,
    )
    return single_events, stream


async def _create_topics(settings: Settings, connection: KafkaConnection) -> None:
    """Create missing topics when allowed; where the platform manages topics (no permission),
    say so and carry on: consuming and producing work the same on existing topics."""
    if not settings.create_topics:
        return
    topics = dict.fromkeys(
        (*settings.consumed_topics, settings.reply_topic, settings.dlq_topic),
        settings.topic_partitions,
    )
    try:
        created = await ensure_topics(connection, topics, settings.topic_replication_factor)
    except Exception as exc:  # no admin permission, an old broker: not fatal
        _log.warning("could not create topics; expecting them to exist", extra={"error": repr(exc)})
        return
    if created:
        _log.info("created topics", extra={"topics": ",".join(created)})


async def run_service(
    settings: Settings, stop: asyncio.Event, registry: CollectorRegistry | None = None
) -> None:
    """Run until ``stop`` is set, then shut down cleanly."""
    check_complete()
    registry = registry or CollectorRegistry()
    metrics = ServiceMetrics(registry)
    redact = redactor_for(settings)
    connection = kafka_connection(settings)
    await _create_topics(settings, connection)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    async with open_gateway(settings, redact) as gateway:
        sink = RecordSink(connection)
        await sink.start()
        redis = redis_connection(settings, metrics)
        watching = asyncio.create_task(redis.watch()) if redis is not None else None
        ledger = identifier_ledger(settings, redis, owner)
        try:
            executor = stripe_executor(
                settings,
                RecordedDeletes(gateway, delete_records(redis), metrics),
                metrics,
                rate_limiters(settings, redis, owner),
            )
            single_events, lane = meter_batchers(settings, gateway, executor, ledger, metrics)
            processor = RequestProcessor(
                settings,
                executor,
                metrics,
                memory=reply_memory(settings, redis),
                meter_events=single_events,
            )
            source = RecordSource(
                connection,
                topics=settings.consumed_topics,
                group_id=settings.group_id,
                # The group waits for our revoke (bounded by its timeout) plus time to rejoin.
                rebalance_timeout_ms=int((settings.revoke_timeout_seconds + 10) * 1000),
                group_instance_id=settings.group_instance_id,
            )
            pipeline = Pipeline(
                source,
                sink,
                processor,
                metrics,
                reply_topic=settings.reply_topic,
                meter_topic=settings.meter_topic,
                meter_batcher=lane,
                gate=executor.gate,
                limits=PipelineLimits(
                    max_in_flight=settings.max_in_flight,
                    max_buffered=settings.max_buffered,
                    max_buffered_meter_events=settings.max_buffered_meter_events,
                    commit_interval_seconds=settings.commit_interval_seconds,
                    revoke_timeout_seconds=settings.revoke_timeout_seconds,
                    shutdown_grace_seconds=settings.shutdown_grace_seconds,
                    credential_hold_seconds=settings.credential_hold_seconds,
                ),
            )
            broker = BrokerProbe(connection)
            checking = asyncio.create_task(_check_broker_every(broker, BROKER_CHECK_SECONDS))
            async with _http_server(
                settings, registry, HealthProbe(pipeline, executor.gate, broker)
            ) as port:
                await source.start(rebalance=pipeline)
                _log.info(
                    "started",
                    extra={
                        "topics": ",".join(settings.consumed_topics),
                        "group_id": settings.group_id,
                        "reply_topic": settings.reply_topic,
                        "http_port": port,
                        "integrations": ",".join(sorted(settings.credentials)),
                    },
                )
                try:
                    await pipeline.run(stop)
                finally:
                    checking.cancel()
                    await broker.close()
                    await source.stop()
                    for batcher in {single_events, lane}:
                        await batcher.close(timeout_s=1.0)
                    await executor.gate.close()
        finally:
            await sink.stop()
            await ledger.close()
            await _close_redis(redis, watching)
    _log.info("stopped")


async def _close_redis(redis: RedisConnection | None, watching: asyncio.Task[None] | None) -> None:
    if watching is not None:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    if redis is not None:
        await redis.close()
