"""Meter events at volume: batches on Stripe's v2 meter event stream, each identifier counted
once (the identifier ledger), the v1 endpoint where the stream is not wanted."""
