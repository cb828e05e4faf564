"""Meter events at volume: batches on Stripe's v2 stream (v1 where it is not wanted), each
identifier counted once (ledgers/). Imports operations, stripe, shared_state and below.
"""
