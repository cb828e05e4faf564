"""The project's Stripe stand-in, for what stripe-mock cannot play (``python
deploy/local/stripe_standin --port 0``): the HTTP app and its control plane, the layers a
request passes, the resources and the meters. It imports aiohttp (uvloop where installed),
the standard library and its own modules; nothing of the service."""

from .app import StripeStandIn
from .server import main

__all__ = ["StripeStandIn", "main"]
