"""Every Prometheus metric the service exports, in one class that takes its registry.

The names are a promise to SREs (dashboards and alerts are built on them): change them only
deliberately. Labels stay bounded: operation, status, topic, partition, integration, error
type; never an id. Tests build the class on a fresh registry.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer import __version__

PREFIX: Final = "stripe_consumer"

# Seconds: from 1 ms (memory answers, validation errors) to Stripe's slowest calls and retries.
_LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

# Stripe's error types (and ours for the transport), so the `outcome` label stays bounded.
STRIPE_OUTCOMES: Final = frozenset(
    {
        "ok",
        "api_connection_error",
        "api_error",
        "authentication_error",
        "card_error",
        "idempotency_error",
        "invalid_request_error",
        "permission_error",
        "rate_limit_error",
        "temporary_session_expired",
    }
)


M = TypeVar("M", Counter, Gauge, Histogram)


def _with_cached_children(metric: M) -> M:
    """``labels(...)`` validates and locks on every call; on the per-request path the same few
    label tuples repeat, so remember their children. (Only for metrics whose series are
    never removed.)"""
    children: dict[tuple[str, ...], Any] = {}
    find = metric.labels

    def labels(*values: str) -> Any:
        child = children.get(values)
        if child is None:
            child = children[values] = find(*values)
        return child

    metric.labels = labels  # type: ignore[method-assign,assignment]  # same call, cached
    return metric


def stripe_outcome_label(error_type: str | None) -> str:
    if error_type is None:
        return "ok"
    return error_type if error_type in STRIPE_OUTCOMES else "other"


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            metric = Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)
            return _with_cached_children(metric) if labels else metric

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return _with_cached_children(
                Histogram(
                    f"{PREFIX}_{name}", doc, labels, registry=registry, buckets=_LATENCY_BUCKETS
                )
            )

        self.registry = registry
        self.records_consumed = counter(
            "records_consumed", "Records fetched from Kafka.", ("topic",)
        )
        self.requests = counter(
            "requests",
            "Requests answered, by operation and reply status (operation `unknown` for records "
            "without a valid operation, status `NO_REPLY` for meter events without a reply).",
            ("operation", "status"),
        )
        self.request_duration = histogram(
            "request_duration_seconds",
            "From record received to reply acknowledged by Kafka.",
            ("operation",),
        )
        self.stripe_requests = counter(
            "stripe_requests",
            "Calls to Stripe, by operation and outcome (`ok` or Stripe's error type).",
            ("operation", "outcome"),
        )
        self.stripe_request_duration = histogram(
            "stripe_request_duration_seconds", "Time of one call to Stripe.", ("operation",)
        )
        self.stripe_retries = counter(
            "stripe_retries", "Transient Stripe failures retried in process.", ("operation",)
        )
        self.in_flight = gauge("in_flight", "Requests received and not yet acknowledged.")
        self.lag = gauge(
            "lag",
            "Records behind the partition's end (as of the last fetch).",
            ("topic", "partition"),
        )
        self.deduplicated = counter(
            "deduplicated",
            "Requests answered without a Stripe side effect: `reply_memory` (a republished "
            "request), `meter_identifier` (an identifier already delivered), "
            "`stripe_identifier` (Stripe said the identifier exists).",
            ("kind",),
        )
        self.dlq = counter("dlq", "Records sent to the dead-letter topic.", ("reason",))
        self.meter_events = counter(
            "meter_events", "Meter events accepted by Stripe, by API.", ("api",)
        )
        self.rebalances = counter("rebalances", "Partition assignments received.")
        self.paused_partitions = gauge("paused_partitions", "Partitions paused for back-pressure.")
        self.build_info = gauge("build_info", "The running version.", ("version",))
        self.build_info.labels(__version__).set(1)
        self.commits = counter("commits", "Offset commits, by result.", ("result",))
        self.delivery_retries = counter(
            "delivery_retries", "Reply or DLQ records sent again after Kafka refused them."
        )
        self.credential_rejected = gauge(
            "credential_rejected",
            "1 while Stripe rejects an integration's key (authentication error).",
            ("integration",),
        )
        self.credential_probes = counter(
            "credential_probes",
            "Probes of a rejected key (one per probe interval), by result: `accepted`, "
            "`rejected`, `unknown` (Stripe gave no verdict).",
            ("integration", "result"),
        )
        self.credential_held = gauge(
            "credential_held",
            "Requests and meter events held while Stripe rejects their integration's key.",
            ("integration",),
        )
        self.rate_limit_wait = histogram(
            "rate_limit_wait_seconds",
            "Time a call waited for the Stripe rate limiter.",
            ("integration",),
        )
        self.last_poll = gauge("last_poll_timestamp_seconds", "Unix time of the last Kafka fetch.")
        self.redis_unavailable = gauge(
            "redis_unavailable",
            "1 while Redis (the shared state: meter ledger, rate limit, memories) cannot be "
            "reached (refused, reset, connecting timed out, the health probe unanswered) until "
            "a call succeeds; one slow or refused call does not set it; 0 otherwise, and "
            "without Redis.",
        )
        self.redis_errors = counter(
            "redis_errors",
            "Redis calls that failed, by what they were for (`meter_ledger`, `rate_limit`, "
            "`reply_memory`, `delete_record`, `health`).",
            ("use",),
        )
        self.redis_data_lost = counter(
            "redis_data_lost",
            "Times Redis came back without the data it held (restarted empty, a failover "
            "without persistence, flushed).",
        )
        self._add_meter_verdict_metrics(counter, gauge)

    def _add_meter_verdict_metrics(self, counter: Any, gauge: Any) -> None:
        """Stripe's verdict on meter events (metering/verdicts/)."""
        self.meter_errors = counter(
            "meter_errors",
            "Meter events that did not count, by code: Stripe's error code from its error "
            "reports, or `validation_error` (refused before sending). Each is on "
            "stripe.meter-errors.",
            ("code",),
        )
        self.meter_error_reports = counter(
            "meter_error_reports",
            "Stripe error reports (thin events), by how they arrived (`webhook`, `poller`) and "
            "result (`processed`, `duplicate`: processed before, by this or another replica).",
            ("source", "result"),
        )
        self.meter_webhook_refused = counter(
            "meter_webhook_refused",
            "Requests to POST /stripe/webhook refused with 400: `signature` (missing or bad), "
            "`stale` (timestamp older than the tolerance), `unknown_integration`, `malformed`.",
            ("reason",),
        )
        self.meter_customer_lookups = counter(
            "meter_customer_lookups",
            "Customer ids looked up with Stripe for CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS, by "
            "result: `found`, `missing` (its events refused), `failed` (sent unchecked).",
            ("result",),
        )
        self.meter_claims_lost = counter(
            "meter_claims_lost",
            "Meter event claims that ran out while their batch was out, by reason: "
            "`another_owner` (another replica holds it now), `expired` (nobody yet). Lost "
            "before the send: not sent from here; while sent: another may send it too.",
            ("reason",),
        )
        self.meter_send_errors = counter(
            "meter_send_errors",
            "Meter events whose send raised an unexpected error (a bug, not Stripe's answer), "
            "by outcome: `retried`, or `failed` (retried enough: answered failed, reply or DLQ).",
            ("outcome",),
        )
        self.meter_drift = gauge(
            "meter_drift",
            "Per meter: what the ledger delivered minus what Stripe counted minus what Stripe "
            "rejected, at the last reconcile.",
            ("meter",),
        )
