"""The Stripe stand-in plays what the tests rely on as Stripe documents it: idempotency keys
pruned after 24 hours, deletes without idempotency, and faults after the side effect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.support.stack import load_local_script

standin_module = load_local_script("stripe_standin")
AUTH = {"Authorization": "Bearer sk_test_51StandInUnitTests"}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(standin_module.StripeStandIn().app())) as test_client:
        yield test_client


async def charge(client: TestClient[Any, Any], key: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/v1/charges",
        data={"amount": "100", "currency": "usd", "source": "tok_visa"},
        headers={**AUTH, "Idempotency-Key": key},
    )
    return response.status, await response.json()


async def stats(client: TestClient[Any, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await (await client.get("/_standin/stats?full=1")).json()
    return result


async def test_a_key_is_replayed_within_24_hours_and_new_again_after(
    client: TestClient[Any, Any],
) -> None:
    """Within 24 h of its first use a key replays the first charge; past it, the key is
    pruned and the same request charges again (what a redelivery a day late does)."""
    _, first = await charge(client, "k-1")
    await client.post("/_standin/config", json={"clock_offset_seconds": 23.9 * 3600})
    _, replayed = await charge(client, "k-1")
    assert replayed["id"] == first["id"]
    assert (await stats(client))["executions"] == {"k-1": 1}
    await client.post("/_standin/config", json={"clock_offset_seconds": 24 * 3600})
    _, again = await charge(client, "k-1")
    assert again["id"] != first["id"]
    assert (await stats(client))["executions"] == {"k-1": 2}


async def test_a_customer_is_deleted_once(client: TestClient[Any, Any]) -> None:
    """Deleting a customer works once; again, or an id never created, is 404
    resource_missing."""
    created = await (
        await client.post("/v1/customers", data={"email": "a@example.com"}, headers=AUTH)
    ).json()
    path = f"/v1/customers/{created['id']}"
    deleted = await client.delete(path, headers=AUTH)
    assert (deleted.status, await deleted.json()) == (
        200,
        {"id": created["id"], "object": "customer", "deleted": True},
    )
    for missing in (path, "/v1/customers/cus_neverMade"):
        again = await client.delete(missing, headers=AUTH)
        error = (await again.json())["error"]
        assert (again.status, error["code"], error["param"]) == (404, "resource_missing", "id")


async def test_a_customer_is_retrieved_as_stripe_answers(client: TestClient[Any, Any]) -> None:
    """GET a created customer: 200; one never made: 404 resource_missing; a deleted one:
    Stripe's `deleted: true` stub."""
    created = await (await client.post("/v1/customers", data={}, headers=AUTH)).json()
    path = f"/v1/customers/{created['id']}"
    found = await client.get(path, headers=AUTH)
    assert (found.status, (await found.json())["id"]) == (200, created["id"])
    never = await client.get("/v1/customers/cus_neverMade", headers=AUTH)
    error = (await never.json())["error"]
    assert (never.status, error["code"], error["param"]) == (404, "resource_missing", "id")
    await client.delete(path, headers=AUTH)
    gone = await client.get(path, headers=AUTH)
    assert (gone.status, (await gone.json())["deleted"]) == (200, True)


async def test_a_fault_after_the_effect_hides_a_done_delete(client: TestClient[Any, Any]) -> None:
    """With `after_effect`, Stripe executes the call and the client sees only the fault."""
    created = await (
        await client.post("/v1/customers", data={"email": "a@example.com"}, headers=AUTH)
    ).json()
    fault = {"status": 500, "path_prefix": "/v1/customers/", "after_effect": True}
    await client.post("/_standin/config", json={"faults": [fault]})
    path = f"/v1/customers/{created['id']}"
    assert (await client.delete(path, headers=AUTH)).status == 500
    assert (await client.delete(path, headers=AUTH)).status == 404  # it was deleted
