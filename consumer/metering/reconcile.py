"""Reconciliation: what the service delivered against what Stripe counted.

Per meter, customer and hour (of the events' timestamps): `delivered` (the usage sums kept
at delivery), `rejected` (moved there from `delivered` when Stripe's error report named the
event, or when it was cancelled; by code), `counted` (Stripe's
``GET /v1/billing/meters/{id}/event_summaries`` with ``value_grouping_window=hour``: its
start and end must lie on hour boundaries) and `drift` = delivered - rejected - counted.
Stripe's summaries are eventually consistent: a reconcile right after sending can show
drift that disappears minutes later. Rejections Stripe counted but did not name (the
unnamed rest of an error report) cannot be placed in a row: they show as drift."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.usage import UsageBook
from consumer.metering.verdicts.catalog import Meter
from consumer.metering.verdicts.intake import StripeReader
from consumer.observability.logs import get_logger

Progress = Callable[[int, int], None]
_log = get_logger()


class Row(msgspec.Struct, frozen=True):
    event_name: str
    meter_id: str | None
    customer: str
    hour: int
    delivered: float
    counted: float
    rejected: dict[str, float]  # code -> value
    rejected_events: dict[str, int]  # code -> how many events

    @property
    def drift(self) -> float:
        return round(self.delivered - sum(self.rejected.values()) - self.counted, 9)


class _Summary(msgspec.Struct):
    id: str
    aggregated_value: float
    start_time: int


class _Summaries(msgspec.Struct):
    data: list[_Summary] = []
    has_more: bool = False


class _Meters(msgspec.Struct):
    data: list[Meter] = []
    has_more: bool = False


class Reconciler:
    def __init__(self, reader: StripeReader, usage: UsageBook, scope: LedgerScope) -> None:
        self._reader = reader
        self._usage = usage
        self._scope = scope

    async def rows(self, since_seconds: float, progress: Progress | None = None) -> list[Row]:
        now = time.time()
        hours = list(range(_hour(now - since_seconds), _hour(now) + 1, 3600))
        delivered: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        rejected: dict[tuple[str, str], dict[int, dict[tuple[str, ...], float]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for hour in hours:
            sent, refused = await self._usage.sums(self._scope, hour)
            for (name, customer), value in sent.items():
                delivered[(name, customer)][hour] = value
            for (name, customer, *code), value in refused.items():
                rejected[(name, customer)][hour][tuple(code)] = value
        meters = await self._meters()
        pairs = sorted(set(delivered) | set(rejected))
        rows: list[Row] = []
        for done, (name, customer) in enumerate(pairs, 1):
            meter = meters.get(name)
            counted = await self.counted(meter, customer, hours) if meter else {}
            for hour in sorted(set(delivered[(name, customer)]) | set(rejected[(name, customer)])):
                codes = rejected[(name, customer)][hour]
                rows.append(
                    Row(
                        event_name=name,
                        meter_id=meter.id if meter else None,
                        customer=customer,
                        hour=hour,
                        delivered=delivered[(name, customer)].get(hour, 0.0),
                        counted=counted.get(hour, 0.0),
                        rejected={c[0]: v for c, v in codes.items() if len(c) == 1},
                        rejected_events={c[0]: int(v) for c, v in codes.items() if len(c) == 2},
                    )
                )
            if progress is not None:
                progress(done, len(pairs))
        return rows

    async def _meters(self) -> dict[str, Meter]:
        """Every meter (inactive ones too: what was delivered to them may still count)."""
        meters: dict[str, Meter] = {}
        params: dict[str, object] = {"limit": 100}
        while True:
            body = await self._reader.get(self._scope.integration, "/v1/billing/meters", params)
            page = msgspec.json.decode(body, type=_Meters)
            for meter in page.data:
                if meter.status == "active" or meter.event_name not in meters:
                    meters[meter.event_name] = meter
            if not page.has_more or not page.data:
                return meters
            params = {**params, "starting_after": page.data[-1].id}

    async def counted(self, meter: Meter, customer: str, hours: list[int]) -> dict[int, float]:
        params: dict[str, object] = {
            "customer": customer,
            "start_time": hours[0],
            "end_time": hours[-1] + 3600,
            "value_grouping_window": "hour",
            "limit": 100,
        }
        counted: dict[int, float] = {}
        path = f"/v1/billing/meters/{meter.id}/event_summaries"
        while True:
            try:
                body = await self._reader.get(self._scope.integration, path, params)
            except StripeFailure as failure:
                if failure.detail.http_status == 404:  # a customer Stripe does not know
                    return counted
                raise
            page = msgspec.json.decode(body, type=_Summaries)
            for summary in page.data:
                counted[summary.start_time] = summary.aggregated_value
            if not page.has_more or not page.data:
                return counted
            params = {**params, "starting_after": page.data[-1].id}


def drift_by_meter(rows: list[Row]) -> dict[str, float]:
    drift: dict[str, float] = defaultdict(float)
    for row in rows:
        drift[row.meter_id or f"(no meter: {row.event_name})"] += row.drift
    return dict(drift)


def _hour(moment: float) -> int:
    whole = int(moment)
    return whole - whole % 3600


async def reconcile_every(
    reconciler: Reconciler,
    gauge: Callable[[str, float], None],
    *,
    every_seconds: float,
    since_seconds: float,
    tolerance: float,
    stop: asyncio.Event,
) -> None:
    """The periodic reconcile (off by default): the drift gauge per meter, and a warning per
    meter beyond the tolerance."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
        if stop.is_set():
            return
        try:
            rows = await reconciler.rows(since_seconds)
        except Exception as exc:
            _log.warning("reconciling meter usage failed", extra={"error": repr(exc)})
            continue
        for meter, drift in drift_by_meter(rows).items():
            gauge(meter, drift)
            if abs(drift) > tolerance:
                _log.warning("meter usage drifts", extra={"meter": meter, "drift": drift})
