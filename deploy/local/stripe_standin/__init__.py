"""The project's Stripe stand-in, for what stripe-mock cannot play (``python
deploy/local/stripe_standin --port 0``). It imports aiohttp (and uvloop where installed),
the standard library and its own modules; nothing of the service."""

from .app import StripeStandIn, main

__all__ = ["StripeStandIn", "main"]
