"""Stripe's v1 resources the service calls: balance, customers (created ones can be deleted
once: again, or an id never made, is 404 ``resource_missing``, as Stripe answers; DELETE
carries no idempotency key), coupons, payment intents, charges (source
``tok_chargeDeclined`` is declined), refunds, payment methods (``pm_card_chargeDeclined``
is declined on attach). Objects echo their parameters; only customers are remembered."""

from __future__ import annotations

from aiohttp import web

from .wire import Handler, decline, error, form, new_id, ok


class Resources:
    def __init__(self) -> None:
        self.customers: set[str] = set()  # created and not deleted (billing.py reads it)

    def reset(self) -> None:
        self.customers.clear()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/balance", _balance),
            web.get("/v1/customers", _list("customer")),
            web.post("/v1/customers", self._create_customer),
            web.get("/v1/customers/{id}", _retrieve("customer")),
            web.post("/v1/customers/{id}", _update("customer")),
            web.delete("/v1/customers/{id}", self._delete_customer),
            web.get("/v1/coupons", _list("coupon")),
            web.post("/v1/coupons", _create("coupon", None)),
            web.post("/v1/payment_intents", _create("payment_intent", "pi")),
            web.get("/v1/payment_intents/{id}", _retrieve("payment_intent")),
            web.post("/v1/payment_intents/{id}/cancel", _cancel_payment_intent),
            web.get("/v1/charges", _list("charge")),
            web.post("/v1/charges", _create_charge),
            web.get("/v1/charges/{id}", _retrieve("charge")),
            web.post("/v1/charges/{id}", _update("charge")),
            web.post("/v1/refunds", _create("refund", "re")),
            web.get("/v1/refunds/{id}", _retrieve("refund")),
            web.post("/v1/payment_methods/{id}/attach", _attach),
            web.get("/v1/payment_methods/{id}", _retrieve("payment_method")),
            web.post("/v1/payment_methods/{id}/detach", _detach),
        ]

    async def _create_customer(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        customer_id = new_id("cus")
        self.customers.add(customer_id)
        return ok({"id": customer_id, "object": "customer", "livemode": False, **params})

    async def _delete_customer(self, request: web.Request) -> web.Response:
        customer_id = request.match_info["id"]
        if customer_id not in self.customers:
            return error(
                404,
                "invalid_request_error",
                f"No such customer: '{customer_id}'",
                "resource_missing",
                param="id",
            )
        self.customers.discard(customer_id)
        return ok({"id": customer_id, "object": "customer", "deleted": True})


async def _balance(_: web.Request) -> web.Response:
    return ok(
        {
            "object": "balance",
            "livemode": False,
            "available": [{"amount": 0, "currency": "usd"}],
            "pending": [{"amount": 0, "currency": "usd"}],
        }
    )


def _list(object_name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "10"))
        prefix = {"customer": "cus", "coupon": "co", "charge": "ch"}[object_name]
        data = [{"id": new_id(prefix), "object": object_name} for _ in range(min(limit, 3))]
        return ok({"object": "list", "data": data, "has_more": False, "url": request.path})

    return handler


def _create(object_name: str, prefix: str | None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        params = form(await request.post())
        object_id = params.pop("id", None) if prefix is None else new_id(prefix)
        return ok({"id": object_id, "object": object_name, "livemode": False, **params})

    return handler


def _retrieve(object_name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return ok({"id": request.match_info["id"], "object": object_name, "livemode": False})

    return handler


def _update(object_name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        params = form(await request.post())
        return ok({"id": request.match_info["id"], "object": object_name, **params})

    return handler


async def _create_charge(request: web.Request) -> web.Response:
    params = form(await request.post())
    if params.get("source") == "tok_chargeDeclined":
        return decline(new_id("ch"))
    return ok(
        {"id": new_id("ch"), "object": "charge", "status": "succeeded", "paid": True, **params}
    )


async def _cancel_payment_intent(request: web.Request) -> web.Response:
    params = form(await request.post())
    return ok(
        {
            "id": request.match_info["id"],
            "object": "payment_intent",
            "status": "canceled",
            **params,
        }
    )


async def _attach(request: web.Request) -> web.Response:
    params = form(await request.post())
    if request.match_info["id"] == "pm_card_chargeDeclined":
        return decline(None)
    return ok(
        {
            "id": request.match_info["id"],
            "object": "payment_method",
            "customer": params.get("customer"),
        }
    )


async def _detach(request: web.Request) -> web.Response:
    return ok({"id": request.match_info["id"], "object": "payment_method", "customer": None})
