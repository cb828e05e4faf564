"""Calling Stripe: the gateway (the only import of stripe; one error mapping; its own HTTP
pool), the calls, the executor and what it applies (credential gate, rate limits, object
locks, retries, deletes recorded). Imports shared_state, contract, settings, observability.
"""
