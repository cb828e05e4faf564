"""Stripe's verdict on meter events: error reports in (webhook, poller), records out on
stripe.meter-errors, each identifier's verdict. Imports stripe, kafka records, shared_state.

- ``reports.py``: Stripe's error reports (v2 thin events, fetched whole) and the
  ``stripe.meter-errors`` records each becomes.
- ``book.py``: the verdict of each identifier (`rejected` with its code, `cancelled`), the
  error reports already processed (claimed by event id, so one replica processes each once),
  and the poller's cursor; in Redis when configured, else in this process.
- ``intake.py``: one path for every report, however it arrives: claim it, fetch it, publish
  its records, mark the identifiers rejected (and forgotten by the identifier ledger, so a
  corrected resend is sent, never dropped as a duplicate), count it.
- ``webhook.py``: ``POST /stripe/webhook`` (signature checked by stripe-python's helper).
- ``poller.py``: ``GET /v2/core/events`` from a durable cursor, the backstop.
- ``catalog.py``: the active meters, read at start and refreshed: pre-validation.
"""
