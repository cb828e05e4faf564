"""The HTTP/1.1 pool under the SDK, against a real local socket server that answers as told:
keep-alive reuse, a stale kept-alive connection, `Connection: close`, chunked bodies,
timeouts, the connection limit, and headers looked up in any case."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from consumer.stripe.http_pool import HttpPool

TLS_FIXTURES = Path(__file__).resolve().parents[2] / "support" / "tls"
Answer = Callable[[bytes], bytes | None]  # request head+body -> raw response (None: hang up)


def ok(body: bytes = b'{"id":"ch_1"}', extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nRequest-Id: req_1\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class Server:
    """Answers each request with ``answer(request)``; counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.delay = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await asyncio.sleep(self.delay)
                response = self.answer(request)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Serve = Callable[[Answer], Awaitable[tuple[Server, str]]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> tuple[Server, str]:
        server = Server(answer)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(listening)
        port = listening.sockets[0].getsockname()[1]
        return server, f"http://127.0.0.1:{port}"

    yield start
    for listening in servers:
        listening.close()


def pool(**overrides: float) -> HttpPool:
    options = {"max_connections": 4, "timeout_seconds": 2.0, **overrides}
    return HttpPool(
        max_connections=int(options["max_connections"]),
        timeout_seconds=options["timeout_seconds"],
        ssl_context=ssl.create_default_context(),
    )


async def test_requests_reuse_one_kept_alive_connection(serve: Serve) -> None:
    """Sequential calls share one connection; the request carries method, path, Host,
    headers and a Content-Length for the body."""
    server, url = await serve(lambda _: ok())
    client = pool()
    for _ in range(3):
        body, status, headers = await client.request(
            "post", f"{url}/v1/charges?expand=x", {"Idempotency-Key": "k1"}, b"amount=1"
        )
        assert (body, status, headers["request-id"]) == (b'{"id":"ch_1"}', 200, "req_1")
    await client.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/charges?expand=x HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first
    assert b"\r\nIdempotency-Key: k1\r\n" in first
    assert first.endswith(b"Content-Length: 8\r\n\r\namount=1")


async def test_headers_are_found_in_any_case(serve: Serve) -> None:
    """The SDK asks for `Request-Id` and `request-id`: both find the header."""
    _, url = await serve(lambda _: ok(extra="Stripe-Should-Retry: true\r\n"))
    client = pool()
    _, _, headers = await client.request("get", f"{url}/v1/balance", {}, None)
    await client.close()
    assert headers["Request-Id"] == headers["request-id"] == "req_1"
    assert "Stripe-Should-Retry" in headers
    assert headers.get("STRIPE-SHOULD-RETRY") == "true"
    assert headers.get("missing") is None


@pytest.mark.parametrize("value", ["acct_1\r\nX-Injected: 1", "acct_1\n", "a\x00b"])
async def test_a_header_value_with_a_line_break_is_refused_unsent(serve: Serve, value: str) -> None:
    """A header value that would end its line early (header injection) raises ValueError
    before anything is sent; the gateway makes that a terminal failure, never a retry."""
    server, url = await serve(lambda _: ok())
    client = pool()
    with pytest.raises(ValueError, match="control character"):
        await client.request("get", f"{url}/v1/balance", {"Stripe-Account": value}, None)
    await client.close()
    assert server.requests == []


async def test_a_chunked_body_is_read_whole(serve: Serve) -> None:
    """A chunked response arrives as one body."""
    chunked = (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    )
    _, url = await serve(lambda _: chunked)
    client = pool()
    body, status, _ = await client.request("get", f"{url}/v1/balance", {}, None)
    await client.close()
    assert (body, status) == (b'{"a": 1}', 200)


async def test_connection_close_is_not_reused(serve: Serve) -> None:
    """A response saying `Connection: close` ends its connection: the next call opens one."""
    server, url = await serve(lambda _: ok(extra="Connection: close\r\n"))
    client = pool()
    for _ in range(2):
        assert (await client.request("get", f"{url}/v1/balance", {}, None))[1] == 200
    await client.close()
    assert server.connections == 2


async def test_a_stale_kept_alive_connection_is_replaced_once(serve: Serve) -> None:
    """The server closed the idle connection: the request goes out again on a new one, once,
    and is answered."""
    server, url = await serve(lambda _: ok())
    client = pool()
    await client.request("get", f"{url}/v1/balance", {}, None)
    server.writers[0].close()  # the server hangs up the kept-alive connection
    await asyncio.sleep(0.05)
    body, status, _ = await client.request("get", f"{url}/v1/balance", {}, None)
    await client.close()
    assert (body, status, server.connections) == (b'{"id":"ch_1"}', 200, 2)


async def test_a_hang_up_without_an_answer_on_a_new_connection_raises(serve: Serve) -> None:
    """A fresh connection closed before any answer is a connection error, not a retry."""
    server, url = await serve(lambda _: None)
    client = pool()
    with pytest.raises(ConnectionError):
        await client.request("post", f"{url}/v1/charges", {}, b"a=1")
    await client.close()
    assert len(server.requests) == 1


async def test_a_slow_answer_times_out(serve: Serve) -> None:
    """No answer within the timeout: TimeoutError, and that connection is not reused."""
    server, url = await serve(lambda _: ok())
    server.delay = 1.0
    client = pool(timeout_seconds=0.2)
    with pytest.raises(TimeoutError):
        await client.request("get", f"{url}/v1/balance", {}, None)
    server.delay = 0.0
    assert (await client.request("get", f"{url}/v1/balance", {}, None))[1] == 200
    await client.close()
    assert server.connections == 2


async def test_calls_beyond_the_limit_wait_for_a_connection(serve: Serve) -> None:
    """With two connections allowed, six concurrent calls all succeed on at most two."""
    server, url = await serve(lambda _: ok())
    server.delay = 0.05
    client = pool(max_connections=2)
    results = await asyncio.gather(
        *(client.request("get", f"{url}/v1/balance", {}, None) for _ in range(6))
    )
    await client.close()
    assert [status for _, status, _ in results] == [200] * 6
    assert server.connections == 2


async def test_an_unreachable_host_raises_a_connection_error() -> None:
    """Nothing listening: an OSError the gateway turns into the SDK's connection error."""
    async with asyncio.timeout(5):
        listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        listening.close()
        await listening.wait_closed()
    client = pool()
    with pytest.raises(ConnectionRefusedError):
        await client.request("get", f"http://127.0.0.1:{port}/v1/balance", {}, None)
    await client.close()


async def test_https_is_verified_against_the_given_trust_and_names_the_host() -> None:
    """Over TLS the pool verifies the server's certificate with its context and sends the
    host name (SNI): answered when the context trusts the certificate, refused when not."""
    tls = TLS_FIXTURES
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tls / "localhost.pem", tls / "localhost-key.pem")
    server = Server(lambda _: ok())
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=served)
    port = listening.sockets[0].getsockname()[1]
    url = f"https://localhost:{port}/v1/balance"
    try:
        trusting = HttpPool(
            max_connections=2,
            timeout_seconds=5,
            ssl_context=ssl.create_default_context(cafile=tls / "localhost.pem"),
        )
        body, status, _ = await trusting.request("get", url, {}, None)
        await trusting.close()
        assert (body, status) == (b'{"id":"ch_1"}', 200)
        assert b"\r\nHost: localhost:" in server.requests[0]
        strict = HttpPool(
            max_connections=2, timeout_seconds=5, ssl_context=ssl.create_default_context()
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await strict.request("get", url, {}, None)
        await strict.close()
    finally:
        listening.close()


async def test_a_header_or_target_that_would_smuggle_a_request_is_never_sent(
    serve: Serve,
) -> None:
    """A line break or NUL in a header, or a space in the target, is refused before anything
    is written (ValueError), so no second request rides inside the first."""
    server, url = await serve(lambda _: ok())
    client = pool()
    for headers, path in (
        ({"Idempotency-Key": "k\r\nX-Injected: yes"}, "/v1/charges"),
        ({"X-Bad\nName": "v"}, "/v1/charges"),
        ({"Idempotency-Key": "k\x00"}, "/v1/charges"),
        ({}, "/v1/charges HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET /"),
    ):
        with pytest.raises(ValueError, match="line break or control character"):
            await client.request("post", f"{url}{path}", headers, b"a=1")
    await client.close()
    assert server.requests == []


async def test_an_idle_connection_to_one_host_makes_room_for_another(serve: Serve) -> None:
    """The API and the meter stream's host share the limit: with one connection allowed and
    it idle to the first host, a call to the second is answered at once, not after the
    timeout."""
    first, first_url = await serve(lambda _: ok())
    second, second_url = await serve(lambda _: ok(b"{}"))
    client = pool(max_connections=1, timeout_seconds=1.0)
    await client.request("get", f"{first_url}/v1/balance", {}, None)
    body, status, _ = await client.request("post", f"{second_url}/v2/meter", {}, b"{}")
    await client.request("get", f"{first_url}/v1/balance", {}, None)
    await client.close()
    assert (body, status) == (b"{}", 200)
    assert (first.connections, second.connections) == (2, 1)
