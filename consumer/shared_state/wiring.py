"""Where each piece of shared state lives: Redis when ``CONSUMER_REDIS_URL`` is set, shared by
every replica and kept across restarts; this process otherwise.

| state | with Redis | without |
|---|---|---|
| meter identifier ledger | Redis only (never sent unclaimed: waits for Redis) | this process |
| Stripe rate limit | the group's limit; this process's share while Redis is away | the share |
| reply memory (COMPLETED by key, failures by taskId) | this process, then Redis | this process |
| deletes sent | this process and Redis | this process |

A process's share of a rate limit is ``STRIPE_RATE_LIMIT / CONSUMER_REPLICAS``.
"""

from __future__ import annotations

from consumer.engine.reply_memory import ReplyMemory
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.ledgers.protocol import IdentifierLedger
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.shared_state.memories import RedisAnswers, RedisDeleteRecords
from consumer.shared_state.redis_client import RedisConnection
from consumer.stripe.deletes import DeleteRecords
from consumer.stripe.rate_limit import RateLimit, RateLimiter, default_rate_limit, share_of
from consumer.stripe.shared_rate_limit import SharedRateLimiter

_log = get_logger()


def redis_connection(settings: Settings, metrics: ServiceMetrics) -> RedisConnection | None:
    if settings.redis_url is None:
        _log.warning(
            "CONSUMER_REDIS_URL is not set: meter identifiers, replies and deletes are "
            "remembered in this process only (not shared by replicas, lost on restart), and "
            "this process keeps to STRIPE_RATE_LIMIT / CONSUMER_REPLICAS",
            extra={"replicas": settings.replicas},
        )
        return None
    return RedisConnection(settings.redis_url.reveal(), metrics, prefix=settings.redis_key_prefix)


def rate_limiters(
    settings: Settings, redis: RedisConnection | None, owner: str
) -> dict[str, RateLimit]:
    """One limiter per credential (each Stripe account has its own limit)."""
    limiters: dict[str, RateLimit] = {}
    for name, credential in settings.credentials.items():
        limit = settings.stripe_rate_limit or default_rate_limit(credential.live_mode)
        burst = settings.stripe_rate_burst
        if redis is None:
            share_burst = share_of(burst, settings.replicas) if burst else None
            limiters[name] = RateLimiter(share_of(limit, settings.replicas), share_burst)
        else:
            limiters[name] = SharedRateLimiter(
                redis,
                integration=name,
                limit=limit,
                burst=burst,
                replicas=settings.replicas,
                owner=owner,
            )
    return limiters


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
        )
    return MemoryIdentifierLedger(
        window_seconds=settings.meter_dedup_window_seconds,
        lease_seconds=settings.meter_claim_seconds,
        max_entries=settings.meter_dedup_max_entries,
        owner=owner,
    )


def reply_memory(settings: Settings, redis: RedisConnection | None) -> ReplyMemory:
    return ReplyMemory(
        settings.reply_memory_entries,
        settings.reply_memory_seconds,
        shared=RedisAnswers(redis) if redis is not None else None,
    )


def delete_records(redis: RedisConnection | None) -> DeleteRecords:
    return DeleteRecords(shared=RedisDeleteRecords(redis) if redis is not None else None)
