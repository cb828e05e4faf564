"""Calling Stripe: the gateway (the only import of stripe, with its one error mapping), the
calls, and the executor with what it applies (credential gate, rate limits, object locks,
retries, deletes recorded). Imports shared_state, contract, settings, observability.
"""
