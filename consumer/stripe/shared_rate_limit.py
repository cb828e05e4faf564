"""One Stripe rate limit for the whole consumer group, kept in Redis.

``STRIPE_RATE_LIMIT`` is what Stripe allows the account; with several replicas each calling
Stripe, only a limit they share keeps the account inside it. The rules are the in-process
limiter's (``rate_limit.py``), applied to every replica's calls at once by one Lua
script, atomic in Redis and timed by Redis's own clock (``TIME``), so replicas' clocks do not
matter:

- a **sliding window log**: a sorted set of the start times of the calls of the last window;
  a call may start while fewer than ``limit`` started within it, and fewer than ``burst``
  within the last ``burst / limit`` of it; otherwise the script answers how long to wait.
  The window is 1.1 s, not 1 s: a call is counted when Redis admits it and reaches Stripe
  some milliseconds later (more on a busy host, or when it opens a connection), and that
  jitter must not put ``limit + 1`` calls into one of Stripe's seconds. The cost: at full
  load the group runs about 9 % below the limit, far cheaper than the 429s it avoids (each
  halves the limit for five seconds);
- **a 429 halves the group's limit**: Stripe's 429 says the account's budget is spent (a
  neighbour may share it), so every replica slows down, not only the one that heard it. One
  signal per window; after the cool-down it climbs back in steps, as in process.

While the limit does not bind, callers ask Redis at once, side by side. Once it binds, a
process's callers wait in arrival order behind a lock and only the first asks Redis (after
sleeping the wait Redis named), so a backlog costs about one Redis call per admitted Stripe
call, not a stampede.

**When Redis does not answer** the limiter neither waits for it nor ignores the limit: it
falls back to this process's share, ``limit / CONSUMER_REPLICAS`` (the in-process limiter),
and goes back to the shared limit once Redis answers. Calls made on the fallback are not in
Redis's window, so in the second Redis comes back the group may make up to one share more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Final

from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection, SharedStateUnavailable
from consumer.stripe.rate_limit import (
    COOLDOWN_SECONDS,
    WINDOW_SECONDS,
    RateLimit,
    RateLimiter,
    default_burst,
    default_rate_limit,
    share_of,
)

SAFETY_MARGIN_SECONDS: Final = 0.1  # jitter between admission and Stripe's count
REDIS_TIMEOUT_SECONDS: Final = 1.0  # longest a call waits on Redis before the fallback
_USE: Final = "rate_limit"
_MICROS: Final = 1_000_000

# The limit in force: the configured one, or lower for a cool-down after a 429 (then
# recovering a tenth of it every fifth of the cool-down). KEYS[2]: {limit, at} of the last
# slow-down. Shared by both scripts.
_EFFECTIVE_LIMIT: Final = """
local function effective(configured, now, cooldown, slowed_key)
  local slowed = redis.call('HMGET', slowed_key, 'limit', 'at')
  if not slowed[1] then return configured, nil end
  local reduced, at = tonumber(slowed[1]), tonumber(slowed[2])
  local since = now - at
  if since < cooldown then return reduced, at end
  local step = math.max(1, math.floor(configured / 10))
  local steps = 1 + math.floor((since - cooldown) / (cooldown / 5))
  return math.min(configured, reduced + steps * step), at
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
"""
# KEYS: window (sorted set), slowed (hash). ARGV: configured limit, burst, window (µs),
# cool-down (µs), this call's member. Returns 0 (admitted) or the µs to wait.
_ACQUIRE: Final = (
    _EFFECTIVE_LIMIT
    + """
local limit = effective(tonumber(ARGV[1]), now, tonumber(ARGV[4]), KEYS[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local wait = 0
if count >= limit then
  local entry = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  wait = math.max(wait, tonumber(entry[2]) + window - now)
end
local burst = math.min(tonumber(ARGV[2]), limit)
if count >= burst then
  local entry = redis.call('ZRANGE', KEYS[1], count - burst, count - burst, 'WITHSCORES')
  wait = math.max(wait, tonumber(entry[2]) + math.floor(window * burst / limit) - now)
end
if wait > 0 then return math.ceil(wait) end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 0
"""
)
# KEYS: slowed (hash). ARGV: configured limit, cool-down (µs), one signal per this (µs).
_SLOW_DOWN: Final = (
    _EFFECTIVE_LIMIT
    + """
local limit, at = effective(tonumber(ARGV[1]), now, tonumber(ARGV[2]), KEYS[1])
if at and now - at < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'limit', math.max(1, math.floor(limit / 2)), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(3 * tonumber(ARGV[2]) / 1000))
return 1
"""
)


class SharedRateLimiter:
    """The group's limit for one credential; this process's share while Redis is away."""

    def __init__(
        self,
        connection: RedisConnection,
        *,
        integration: str,
        limit: int,
        burst: int | None,
        replicas: int,
        owner: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        burst = max(1, min(limit, burst if burst is not None else default_burst(limit)))
        self._redis = connection
        # One hash tag for both keys: a script's keys share a slot on a Redis Cluster.
        self._keys = [
            f"{connection.prefix}rate:{{{integration}}}:window",
            f"{connection.prefix}rate:{{{integration}}}:slowed",
        ]
        window_us = int((WINDOW_SECONDS + SAFETY_MARGIN_SECONDS) * _MICROS)
        cooldown_us = int(COOLDOWN_SECONDS * _MICROS)
        self._acquire_args = [limit, burst, window_us, cooldown_us]
        self._slow_down_args = [limit, cooldown_us, int(WINDOW_SECONDS * _MICROS)]
        self._acquire = connection.script(_ACQUIRE)
        self._slow_down = connection.script(_SLOW_DOWN)
        self._members = (f"{owner}:{n}" for n in itertools.count())
        self.fallback = RateLimiter(share_of(limit, replicas), share_of(burst, replicas))
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep
        self._tasks: set[asyncio.Task[None]] = set()

    async def acquire(self) -> float:
        """Wait for a slot in the group's limit (or this process's share without Redis);
        return how long the caller waited, in seconds."""
        started = self._clock()
        wait = 0.0
        if not self._lock.locked():  # nobody waiting here: ask at once, alongside others
            wait = await self._ask_redis()
            if wait == 0.0:
                return self._clock() - started
        async with self._lock:  # the limit binds: wait in arrival order, one asking Redis
            while wait >= 0.0:
                await self._sleep(wait)
                wait = await self._ask_redis()
                if wait == 0.0:
                    return self._clock() - started
        await self.fallback.acquire()
        return self._clock() - started

    async def _ask_redis(self) -> float:
        """0.0: admitted; > 0: seconds to wait before asking again; < 0: Redis is away."""
        if not self._redis.available:
            return -1.0
        try:
            wait_us = await self._redis.run(
                self._acquire,
                self._keys,
                [*self._acquire_args, next(self._members)],
                use=_USE,
                timeout_seconds=REDIS_TIMEOUT_SECONDS,
            )
        except SharedStateUnavailable:
            return -1.0
        return max(0.0, int(wait_us) / _MICROS)

    def slow_down(self) -> None:
        """Stripe said 429: halve the group's limit (and this process's fallback share)."""
        self.fallback.slow_down()
        if not self._redis.available:
            return
        task = asyncio.get_running_loop().create_task(self.slow_down_group())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def slow_down_group(self) -> None:
        """Halve the limit every replica gets (once per window, however many say so)."""
        with contextlib.suppress(SharedStateUnavailable):  # the fallback share slowed already
            await self._redis.run(
                self._slow_down,
                self._keys[1:],
                self._slow_down_args,
                use=_USE,
                timeout_seconds=REDIS_TIMEOUT_SECONDS,
            )


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
