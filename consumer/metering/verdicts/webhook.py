"""``POST /stripe/webhook`` (integration `default`) and ``POST /stripe/webhook/<integration>``:
Stripe's event destination for meter error reports.

Unsigned, forged or replayed requests (timestamp older than 300 s) get 400 and change
nothing, counted in ``stripe_consumer_meter_webhook_refused_total{reason}``. A valid report
is processed through the intake (200; 200 again, changing nothing, when it was processed
before); 500 when that failed, so Stripe delivers it again. Other event types: 200, ignored.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from consumer.metering.verdicts.intake import ErrorIntake
from consumer.metering.verdicts.reports import REPORT_TYPES, decode_thin
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import WEBHOOK_TOLERANCE_SECONDS, Secret
from consumer.stripe.gateway import SignatureRejected, verify_signature

MAX_BODY_BYTES: Final = 1024 * 1024
_log = get_logger()


# (method, path): served from the first moment of start-up (observability.http.LateRoutes).
WEBHOOK_ROUTES: Final = (("POST", "/stripe/webhook"), ("POST", "/stripe/webhook/{integration}"))


def webhook_routes(
    intake: ErrorIntake, secrets: dict[str, Secret], metrics: ServiceMetrics
) -> list[web.RouteDef]:
    def refuse(reason: str, message: str) -> web.Response:
        metrics.meter_webhook_refused.labels(reason).inc()
        return web.json_response({"error": message}, status=400)

    async def receive(request: web.Request) -> web.Response:
        integration = request.match_info.get("integration", "default")
        secret = secrets.get(integration)
        if secret is None:
            return refuse("unknown_integration", "No signing secret for this integration")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return refuse("malformed", "Body too large")
        body = await request.read()  # bounded by the app's client_max_size (1 MiB) as well
        try:
            verify_signature(
                body,
                request.headers.get("Stripe-Signature"),
                secret.reveal(),
                WEBHOOK_TOLERANCE_SECONDS,
            )
        except SignatureRejected as rejected:
            return refuse(rejected.reason, f"Stripe-Signature refused ({rejected.reason})")
        try:
            event = decode_thin(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return refuse("malformed", "Not a Stripe event")
        if event.type not in REPORT_TYPES:
            return web.json_response({"ignored": event.type})
        try:
            processed = await intake.take(event.id, integration, "webhook", event.context)
        except Exception as exc:
            _log.warning(
                "meter error report not processed; Stripe will deliver it again",
                extra={"stripe_event_id": event.id, "error": repr(exc)},
            )
            return web.json_response({"error": "not processed, try again"}, status=500)
        return web.json_response({"processed": processed})

    return [web.post(path, receive) for _, path in WEBHOOK_ROUTES]
