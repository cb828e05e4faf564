"""The verdict path's parts built from the settings: the intake (what the webhook and the
poller feed), the webhook's routes, the poller (None when polling is off), the request
side (refusals, cancels, the active meters) and what runs beside the pipeline. Given the
operations' Stripe rate limiters, the verdict path's GETs (reports, events, meters, known
customers, reconcile) count against the same limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from consumer.kafka.producer import RecordSink
from consumer.metering.ledgers.protocol import IdentifierLedger, LedgerScope
from consumer.metering.reconcile import Reconciler, reconcile_every
from consumer.metering.usage import UsageBook
from consumer.metering.verdicts.book import VerdictBook
from consumer.metering.verdicts.catalog import MeterCatalog
from consumer.metering.verdicts.customers import KnownCustomers
from consumer.metering.verdicts.intake import ErrorIntake, StripeReader
from consumer.metering.verdicts.poller import ReportPoller
from consumer.metering.verdicts.refusals import MeterVerdicts
from consumer.metering.verdicts.webhook import webhook_routes
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection
from consumer.stripe.gateway import StripeGateway
from consumer.stripe.rate_limit import RateLimit


@dataclass(frozen=True, slots=True)
class VerdictParts:
    intake: ErrorIntake
    routes: list[web.RouteDef]
    poller: ReportPoller | None
    request_side: MeterVerdicts  # refusals before sending, cancels
    reader: StripeReader
    meters_refresh_seconds: float
    reconcile: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None

    async def start(self) -> None:
        """Before consuming: the first read of the active meters (when pre-validation is on)."""
        if self.meters_refresh_seconds > 0:
            await self.request_side.catalog.try_refresh(self.reader, "default")

    def tasks(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        """What runs beside the pipeline: the poller, the active meters' refresh."""
        tasks: list[Coroutine[Any, Any, None]] = []
        if self.poller is not None:
            tasks.append(self.poller.run(stop))
        if self.meters_refresh_seconds > 0:
            catalog = self.request_side.catalog
            every = self.meters_refresh_seconds
            tasks.append(catalog.keep_fresh(self.reader, "default", every, stop))
        if self.reconcile is not None:
            tasks.append(self.reconcile(stop))
        return tasks


def verdict_parts(
    settings: Settings,
    *,
    gateway: StripeGateway,
    sink: RecordSink,
    book: VerdictBook,
    ledger: IdentifierLedger,
    metrics: ServiceMetrics,
    usage: UsageBook,
    redis: RedisConnection | None = None,
    limiters: Mapping[str, RateLimit] | None = None,
) -> VerdictParts:
    reader = StripeReader(gateway, settings, limiters)
    intake = ErrorIntake(
        reader, sink.send, book, ledger, metrics, topic=settings.meter_errors_topic, usage=usage
    )
    config = settings.meter_verdicts
    poller = None
    if config.poll_seconds > 0:
        poller = ReportPoller(
            reader,
            intake,
            book,
            integrations=sorted(settings.credentials),
            poll_seconds=config.poll_seconds,
            lookback_hours=config.lookback_hours,
        )
    reconcile = None
    if config.reconcile_every_seconds > 0:
        reconciler = Reconciler(reader, usage, LedgerScope("default", None))

        def reconcile(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
            return reconcile_every(
                reconciler,
                lambda meter, drift: metrics.meter_drift.labels(meter).set(drift),
                every_seconds=config.reconcile_every_seconds,
                since_seconds=config.reconcile_since_hours * 3600,
                tolerance=config.reconcile_tolerance,
                stop=stop,
            )

    customers = _known_customers(settings, reader, redis, metrics)
    request_side = MeterVerdicts(
        book, MeterCatalog(), topic=settings.meter_errors_topic, usage=usage, customers=customers
    )
    return VerdictParts(
        intake,
        webhook_routes(intake, config.webhook_secrets, metrics),
        poller,
        request_side,
        reader,
        config.meters_refresh_seconds,
        reconcile,
    )


def _known_customers(
    settings: Settings,
    reader: StripeReader,
    redis: RedisConnection | None,
    metrics: ServiceMetrics,
) -> KnownCustomers | None:
    """The known-customer check (None when off); its lookups are the reader's GETs."""
    seconds = settings.meter_verdicts.known_customers_seconds
    if seconds <= 0:
        return None
    return KnownCustomers(
        lambda integration, path: reader.get(integration, path, {}),
        redis,
        found_seconds=seconds,
        counted=lambda result: metrics.meter_customer_lookups.labels(result).inc(),
    )
