"""The HTTP/1.1 transport under the stripe SDK: a thin pool of keep-alive connections on the
event loop's own transports (uvloop's, in the service) and httptools' parser (llhttp, the
parser of Node.js). The gateway hands it to the SDK as the SDK's ``HTTPClient``.

The SDK builds every request (URL, headers, form or JSON body, idempotency key) and turns
every response into its objects and typed errors; this module only moves bytes. It replaced
the SDK's ``AIOHTTPClient`` because the HTTP path was the largest part of the service's CPU
per request (README, Performance; ``python -m bench.transports`` compares the clients):
aiohttp builds a request object, a response object, a stream reader, a timer context and a
task-aware writer per call, none of which a keep-alive client of one API needs.

Connections are kept per origin, reused most-recent-first (warm ones stay warm; the rest
age out after ``keepalive_seconds``), at most ``max_connections`` open; a call that finds
none free waits for one. A request on a reused connection that the server closed before
answering a single byte is sent once more on a new connection (every POST carries an
idempotency key, so that is safe); any other failure is raised, and the gateway makes it the
SDK's ``APIConnectionError``, which the engine retries with the same key. A request line or
header holding a control character is never sent (ValueError: header injection), as
aiohttp refused it; the gateway makes that terminal.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
from collections.abc import Mapping
from typing import Any, Final, cast
from urllib.parse import urlsplit

import httptools

_Origin = tuple[str, str, int]  # scheme, host, port
_MAX_HEAD_BYTES: Final = 64 * 1024
_UNSAFE_FIELD: Final = re.compile(r"[\r\n\x00]")  # what would end a header line early
_UNSAFE_TARGET: Final = re.compile(r"[\x00-\x20\x7f]")  # the target is one token


class _Headers(dict[str, str]):
    """Response headers, looked up case-insensitively (HTTP's rule; the SDK asks for
    ``Request-Id`` in one place and ``request-id`` in another). Keys are stored lowercase."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class _StaleConnection(Exception):
    """A kept-alive connection the server had closed: nothing of the answer arrived."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the response parsed as it arrives."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[bytes, int, _Headers]] | None = None
        self._headers = _Headers()
        self._body: list[bytes] = []
        self._received = False  # any byte of the current response
        self.reused = False
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if not self._received and self.reused:
                self._waiter.set_exception(_StaleConnection())
            else:
                self._waiter.set_exception(exc or ConnectionError("connection closed by Stripe"))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        previous = dict.get(self._headers, key)
        text = value.decode("latin-1")
        dict.__setitem__(self._headers, key, f"{previous}, {text}" if previous else text)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result((b"".join(self._body), status, self._headers))
        if not self._parser.should_keep_alive():
            self.close()

    # -- the client's side -----------------------------------------------------------------

    def send(self, head: bytes, body: bytes | None) -> asyncio.Future[tuple[bytes, int, _Headers]]:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._headers = _Headers()
        self._body = []
        self._received = False
        if self.closed or self._transport.is_closing():  # closed by Stripe while idle
            self._waiter.set_exception(
                _StaleConnection() if self.reused else ConnectionError("connection closed")
            )
            return self._waiter
        self._transport.write(head + body if body else head)
        return self._waiter

    def done(self) -> None:
        self._waiter = None
        self.reused = True

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()


class HttpPool:
    """Keep-alive HTTP/1.1 connections per origin (see the module). ``request`` returns
    (body, status, headers) or raises OSError (ConnectionError), TimeoutError or
    ssl.SSLError; the gateway turns those into the SDK's ``APIConnectionError``."""

    def __init__(
        self,
        *,
        max_connections: int,
        timeout_seconds: float,
        ssl_context: ssl.SSLContext,
        keepalive_seconds: float = 15.0,
    ) -> None:
        self._max_connections = max_connections
        self._timeout = timeout_seconds
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context
        self._idle: dict[_Origin, collections.deque[_Connection]] = {}
        self._open = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._heads: dict[str, tuple[_Origin, bytes]] = {}  # URL prefix -> origin, Host line

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        origin, target, host = self._split(url)
        head = _head(method, target, host, headers, body)
        deadline = asyncio.get_running_loop().time() + self._timeout
        for _ in range(2):  # once more only when a kept-alive connection was stale
            connection = await self._connection(origin, deadline)
            try:
                return await self._exchange(connection, head, body, deadline)
            except _StaleConnection:
                continue
            finally:
                self._release(origin, connection)
        raise ConnectionError("Stripe closed two kept-alive connections without answering")

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    # -- the pool --------------------------------------------------------------------------

    async def _connection(self, origin: _Origin, deadline: float) -> _Connection:
        """A kept-alive connection to ``origin``, else a new one within the limit (closing
        another origin's idle one to make room: the API and the meter stream's host share
        the limit), else the next one released."""
        while True:
            connection = self._take_idle(origin)
            if connection is not None:
                return connection
            if self._open < self._max_connections or self._close_one_idle():
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            async with asyncio.timeout_at(deadline):
                await waiter
        self._open += 1
        try:
            async with asyncio.timeout_at(deadline):
                return await self._connect(origin)
        except BaseException:
            self._open -= 1
            raise

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: least likely to be stale
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
            self._open -= 1
        return None

    def _close_one_idle(self) -> bool:
        """Close the longest-idle connection of any origin; False when none is idle."""
        for idle in self._idle.values():
            if idle:
                idle.popleft().close()
                self._open -= 1
                return True
        return False

    async def _connect(self, origin: _Origin) -> _Connection:
        scheme, host, port = origin
        tls = self._ssl if scheme == "https" else None
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, host, port, ssl=tls, server_hostname=host if tls else None
        )
        return connection

    def _release(self, origin: _Origin, connection: _Connection) -> None:
        connection.done()
        if connection.closed:
            self._open -= 1
        else:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, collections.deque()).append(connection)
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes | None, deadline: float
    ) -> tuple[bytes, int, Mapping[str, str]]:
        answer = connection.send(head, body)
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, _time_out, answer, connection)
        try:
            return await answer
        finally:
            timer.cancel()

    def _split(self, url: str) -> tuple[_Origin, str, bytes]:
        """(origin, request target, Host header line) of an absolute URL."""
        parts = urlsplit(url)
        prefix = f"{parts.scheme}://{parts.netloc}"
        known = self._heads.get(prefix)
        if known is None:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            known = ((parts.scheme, parts.hostname or "", port), parts.netloc.encode("idna"))
            self._heads[prefix] = known
        target = url[len(prefix) :] or "/"
        return known[0], target, known[1]


def _head(
    method: str, target: str, host: bytes, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The request line and headers. A line break or NUL in a header (an idempotency key
    taken from a request, say) or a space in the target would let one request smuggle
    another: ValueError, never sent (the gateway makes it a terminal failure)."""
    if _UNSAFE_TARGET.search(target) or _UNSAFE_FIELD.search(
        "".join((*headers, *headers.values()))
    ):
        raise ValueError("a header or the request target holds a line break or control character")
    lines = [f"{method.upper()} {target} HTTP/1.1\r\nHost: ".encode(), host, b"\r\n"]
    lines += [f"{name}: {value}\r\n".encode() for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n".encode())
    lines.append(b"\r\n")
    head = b"".join(lines)
    if len(head) > _MAX_HEAD_BYTES:
        raise ValueError("request headers too large")
    return head


def _time_out(answer: asyncio.Future[Any], connection: _Connection) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())
    connection.close()  # its answer may still arrive: the connection is not reused
