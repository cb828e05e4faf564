"""The meter lane's parts built from the settings: the identifier ledger (Redis when
configured) and the two batchers (v1 on the request topics, the v2 stream on the meter topic)."""

from __future__ import annotations

from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.ledgers.protocol import IdentifierLedger
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.metering.sessions import ExecutorSessionCreator, MeterEventSessions
from consumer.metering.transports import SingleEventTransport, StreamTransport
from consumer.metering.usage import UsageBook
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.gateway import StripeGateway


def identifier_ledger(
    settings: Settings, redis: RedisConnection | None, owner: str
) -> IdentifierLedger:
    """Redis when configured; otherwise this process's memory, which is exact only for one
    replica that never restarts."""
    if redis is not None:
        return RedisIdentifierLedger(
            redis,
            window_seconds=settings.meter_dedup_window_seconds,
            lease_seconds=settings.meter_claim_seconds,
            owner=owner,
            events_per_second=settings.meter_ledger_events_per_second,
        )
    return MemoryIdentifierLedger(
        window_seconds=settings.meter_dedup_window_seconds,
        lease_seconds=settings.meter_claim_seconds,
        max_entries=settings.meter_dedup_max_entries,
        owner=owner,
    )


def meter_batchers(
    settings: Settings,
    gateway: StripeGateway,
    executor: StripeCallExecutor,
    ledger: IdentifierLedger,
    metrics: ServiceMetrics,
    *,
    usage: UsageBook | None = None,
) -> tuple[MeterEventBatcher, MeterEventBatcher]:
    """(v1 batcher for meter events on the request topics, the meter topic's batcher).

    The request topics use the v1 endpoint one event at a time (Conductor wants Stripe's
    synchronous validation); the meter topic uses the v2 stream unless CONSUMER_METER_API=v1.
    """
    single_events = MeterEventBatcher(
        SingleEventTransport(executor),
        ledger,
        metrics,
        linger_seconds=0.002,
        concurrency=64,
        lease_seconds=settings.meter_claim_seconds,
        usage=usage,
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
        lease_seconds=settings.meter_claim_seconds,
        usage=usage,
    )
    return single_events, stream
