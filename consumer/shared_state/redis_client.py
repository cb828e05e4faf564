"""The connection to Redis: the only module that imports ``redis``.

Every use of Redis (meter ledger, rate limit, memories, delete records) goes through one
:class:`RedisConnection`, which translates whatever Redis or the network raises into one
exception, :class:`SharedStateUnavailable`, and keeps the health of the connection. A failed
call says one of two things, and only the first concerns the other uses:

- **Redis is unreachable**: the connection was refused or reset, connecting timed out, or the
  health probe got no answer in time (a hung or paused server). Redis is marked unavailable
  (the ``redis_unavailable`` gauge, one warning in the log); for ``retry_after_seconds``
  calls of every use fail at once instead of each waiting on a dead server, and each user
  degrades its own way (the meter ledger waits, the rate limit falls back to this process's
  share, the reply memory rides out a blip, then keeps to this process). The first call of
  any use that succeeds afterwards (or the probe) marks it available again.
- **this call failed**: it timed out reading its answer (a slow command, a stalled process),
  hit the caller's own deadline, or Redis refused the command. Only that call fails (counted
  in ``redis_errors_total{use}``); every other call goes on as before. (One slow call used to
  mark Redis unavailable for every use for a second: under load one slow use turned into
  failures of all the others.)

:meth:`watch` probes Redis every few seconds, so a hung server is noticed, recovery is
noticed (and logged) even when nothing else calls, and so is Redis coming back *without its
data* (restarted empty, a failover without persistence): a marker key written once is gone
or replaced. That is counted (``redis_data_lost_total``) and logged as an error, because what
Redis remembered (delivered identifiers, answered requests, deletes sent) is forgotten.

redis-py's own retries are off: each caller decides how to wait. Errors are logged with the
redactor in front (a URL may hold a password).

On a Redis Cluster (``cluster=True``: the URL names any node) every operation stays on one
hash slot: the users' keys carry hash tags (``{...}``), :meth:`slot_groups` splits a batch by
slot, and :meth:`get_many` reads across slots. The data marker lives on one node only, so a
lost node is noticed when it is the marker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import hiredis
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import MaxConnectionsError

from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings

DEFAULT_PREFIX: Final = "stripe-consumer:"
DATA_MARKER: Final = "data-marker"  # a key written once; gone means Redis lost its data
MAX_CONNECTIONS: Final = 64  # per process; commands wait for a free one
_MARKER_SCRIPT: Final = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""
_CALL_LOG_SECONDS: Final = 60.0
_CONNECT_TIMEOUT: Final = "Timeout connecting"  # redis-py's message for a connect timeout
_log = get_logger()
T = TypeVar("T")


class HiredisPackedConnection(redis.Connection):
    """redis-py's asyncio connection packs each command into the wire format in Python: 190 µs
    for a meter batch's 235-argument script call, a fifth of the meter lane's CPU (py-spy).
    hiredis, already the reply parser, packs the same bytes in 27 µs; redis-py's own sync
    client does the same when hiredis is installed. TLS (``rediss://``) and cluster
    connections keep redis-py's packing."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # a command name may be two words: 'CLIENT SETNAME'
            args = (*args[0].encode().split(), *args[1:])
        return [hiredis.pack_command(args)]


class SharedStateUnavailable(Exception):
    """Redis did not answer: down, unreachable, too slow, or refusing the command. Each user
    of shared state degrades its own way (see ``shared_state/``)."""


class LuaScript:
    """A Lua script registered with the connection (run with :meth:`RedisConnection.run`)."""

    def __init__(self, script: Any) -> None:
        self._script = script

    async def __call__(self, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        return await self._script(keys=list(keys), args=list(args))


class RedisConnection:
    def __init__(
        self,
        url: str,
        metrics: ServiceMetrics,
        *,
        prefix: str = DEFAULT_PREFIX,
        command_timeout_seconds: float = 2.0,
        retry_after_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        cluster: bool = False,
    ) -> None:
        self.clustered = cluster
        # At most MAX_CONNECTIONS commands at once; the others wait for a free connection: the
        # pools refuse beyond their size, which hundreds of requests in flight reach at once,
        # and each refusal would count as Redis failing.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        # A cluster client learns the nodes once; many first calls at once each start to (and
        # break each other's connections), so the first call does it alone.
        self._learning = asyncio.Lock()
        self._learned = not cluster
        self._client: Any = (
            _cluster_client(url, command_timeout_seconds)
            if cluster
            else _single_client(url, command_timeout_seconds)
        )
        self._metrics = metrics
        self.prefix = prefix
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._failing_since: float | None = None  # when Redis was found unreachable
        self._retry_at = 0.0
        self._next_call_log: dict[str, float] = {}  # use -> when a failed call is logged next
        self._marker_key = prefix + DATA_MARKER
        self._marker: str | None = None  # the marker this process saw last
        self._marker_script = self.script(_MARKER_SCRIPT)

    # -- health ---------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while Redis was found unreachable recently (calls fail at once until
        retried); one call failing alone never makes it False."""
        return self._failing_since is None or self._clock() >= self._retry_at

    def _unreachable(self, use: str, exc: BaseException) -> None:
        """Redis itself does not answer: every use fails fast for a while."""
        now = self._clock()
        self._metrics.redis_errors.labels(use).inc()
        self._metrics.redis_unavailable.set(1)
        self._retry_at = now + self._retry_after
        if self._failing_since is None:
            self._failing_since = now
            _log.warning(
                "Redis unavailable: meter events wait for it; the rate limit falls back to "
                "this process's share; reply memory and delete records stay in this process",
                extra={"use": use, "error": f"{type(exc).__name__}: {exc}"},
            )

    def _call_failed(self, use: str, exc: BaseException) -> None:
        """One call failed (a slow answer, a refused command): counted; nothing else changes.
        Logged at most once a minute per use."""
        self._metrics.redis_errors.labels(use).inc()
        now = self._clock()
        if now >= self._next_call_log.get(use, 0.0):
            self._next_call_log[use] = now + _CALL_LOG_SECONDS
            _log.warning(
                "a Redis call failed; only that call gives up",
                extra={"use": use, "error": f"{type(exc).__name__}: {exc}"},
            )

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            _log.warning(
                "Redis answers again",
                extra={"unavailable_seconds": round(self._clock() - self._failing_since, 1)},
            )
            self._failing_since = None
        self._metrics.redis_unavailable.set(0)

    async def _call(
        self,
        use: str,
        command: Callable[[], Awaitable[T]],
        *,
        timeout_seconds: float | None = None,
        probe: bool = False,
    ) -> T:
        if not probe and not self.available:
            raise SharedStateUnavailable("Redis failed recently; retrying shortly")
        try:
            async with asyncio.timeout(timeout_seconds), self._slots:
                if not self._learned:
                    await self._learn_nodes()
                result = await command()
        except TimeoutError as exc:
            if timeout_seconds is not None and not probe:
                # The caller's own deadline (waiting for a free connection counts): it gives
                # up on this call, which says nothing of Redis (not even counted).
                raise SharedStateUnavailable(
                    f"Redis did not answer within {timeout_seconds} s"
                ) from exc
            self._unreachable(use, exc)  # the probe's deadline: a hung or paused server
            raise SharedStateUnavailable(f"Redis did not answer ({type(exc).__name__})") from exc
        except (redis.RedisError, OSError) as exc:
            if probe or _says_unreachable(exc):
                self._unreachable(use, exc)
            else:
                self._call_failed(use, exc)
            raise SharedStateUnavailable(f"Redis did not answer ({type(exc).__name__})") from exc
        self._succeeded()
        return result

    async def _learn_nodes(self) -> None:
        async with self._learning:
            if not self._learned:
                await self._client.initialize()
                self._learned = True

    # -- commands -------------------------------------------------------------------------

    def script(self, source: str) -> LuaScript:
        return LuaScript(self._client.register_script(source))

    async def run(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[str | bytes | int],
        *,
        use: str,
        timeout_seconds: float | None = None,
    ) -> Any:
        """Run a Lua script (atomic in Redis); SharedStateUnavailable when Redis fails."""
        return await self._call(use, lambda: script(keys, args), timeout_seconds=timeout_seconds)

    def slot_groups(self, keys: Sequence[str]) -> list[list[int]]:
        """The keys' indexes in groups that one script call may take: all of them on a single
        Redis; those sharing a hash slot on a cluster."""
        if not self.clustered:
            return [list(range(len(keys)))]
        groups: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            groups.setdefault(key_slot(key.encode()), []).append(index)
        return list(groups.values())

    async def get_many(self, keys: Sequence[str], *, use: str) -> list[bytes | None]:
        """MGET (on a cluster, one per slot: the keys need not share one)."""
        read = self._client.mget_nonatomic if self.clustered else self._client.mget
        values: list[bytes | None] = await self._call(use, lambda: read(list(keys)))
        return values

    async def put(self, key: str, value: bytes, *, ttl_seconds: float, use: str) -> None:
        """SET with an expiry."""
        ttl_ms = max(1, int(ttl_seconds * 1000))
        await self._call(use, lambda: self._client.set(key, value, px=ttl_ms))

    async def swap(self, key: str, value: bytes, *, ttl_seconds: float, use: str) -> bytes | None:
        """SET with an expiry, answering the value it replaced (None: there was none)."""
        ttl_ms = max(1, int(ttl_seconds * 1000))
        previous: bytes | None = await self._call(
            use, lambda: self._client.set(key, value, px=ttl_ms, get=True)
        )
        return previous

    async def hash_all(self, key: str, *, use: str) -> dict[str, str]:
        """HGETALL, decoded."""
        raw: dict[bytes, bytes] = await self._call(use, lambda: self._client.hgetall(key))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def delete(self, key: str, *, use: str) -> None:
        await self._call(use, lambda: self._client.delete(key))

    # -- watching -------------------------------------------------------------------------

    async def check(self) -> bool:
        """Probe Redis (even while marked unavailable) and look for lost data; True when it
        answered."""
        proposed = uuid.uuid4().hex
        try:
            current = await self._call(
                "health",
                lambda: self._marker_script([self._marker_key], [proposed]),
                timeout_seconds=2.0,
                probe=True,
            )
        except SharedStateUnavailable:
            return False
        marker = current.decode() if isinstance(current, bytes) else str(current)
        if self._marker is not None and marker != self._marker:
            self._metrics.redis_data_lost.inc()
            _log.error(
                "Redis came back without its data (restarted empty, or a failover without "
                "persistence): delivered meter identifiers, remembered replies and deletes sent "
                "before now are forgotten; Stripe's own 24-hour idempotency still covers POSTs "
                "and meter identifiers sent again",
            )
        self._marker = marker
        return True

    async def watch(self, interval_seconds: float = 2.0) -> None:
        """Probe forever (a background task; cancel it to stop)."""
        while True:
            await self.check()
            await asyncio.sleep(interval_seconds)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a connection that never opened
            await self._client.aclose()


def _says_unreachable(exc: BaseException) -> bool:
    """Does this failure say Redis cannot be reached at all (refused, reset, connecting timed
    out), rather than that one call failed? A slow answer (a read timeout) and a refused
    command concern that call alone; a hung server is found by the probe."""
    if isinstance(exc, redis.TimeoutError):
        return str(exc).startswith(_CONNECT_TIMEOUT)
    if isinstance(exc, MaxConnectionsError):  # this process's pool, not Redis
        return False
    return isinstance(exc, (redis.ConnectionError, OSError))


def _single_client(url: str, timeout_seconds: float) -> Any:
    pool = redis.BlockingConnectionPool.from_url(
        url,
        connection_class=HiredisPackedConnection,  # a rediss:// or unix:// URL chooses its own
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=min(1.0, timeout_seconds),
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis.from_pool(pool)


def _cluster_client(url: str, timeout_seconds: float) -> Any:
    """A cluster client that learns the nodes from the one the URL names, and follows MOVED
    (slots migrating) itself; no retries of its own otherwise."""
    return RedisCluster.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=min(1.0, timeout_seconds),
        retry=Retry(NoBackoff(), 0),
    )


def redis_connection(settings: Settings, metrics: ServiceMetrics) -> RedisConnection | None:
    if settings.redis_url is None:
        _log.warning(
            "CONSUMER_REDIS_URL is not set: meter identifiers, replies and deletes are "
            "remembered in this process only (not shared by replicas, lost on restart), and "
            "this process keeps to STRIPE_RATE_LIMIT / CONSUMER_REPLICAS",
            extra={"replicas": settings.replicas},
        )
        return None
    return RedisConnection(
        settings.redis_url.reveal(),
        metrics,
        prefix=settings.redis_key_prefix,
        cluster=settings.redis_cluster,
    )
