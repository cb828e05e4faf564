"""Identifier ledgers: which meter-event identifiers Stripe has counted, in process or in
Redis, behind one protocol. Imports shared_state and below.

Each identifier must count exactly once in Stripe, across redeliveries, producer retries,
rebalances, restarts and replicas; Stripe itself only deduplicates for 24 hours but accepts
events 35 days old. The ledger records identifiers for a window (default 35 days) with an
atomic claim, so two replicas holding duplicates of one event never both send it:

::

    absent ──claim──► pending(owner, lease) ──delivered──► delivered (expires after window)
                            │
                      renew │
                            └──release (send failed) / lease expiry (owner died)──► absent

- ``claim`` answers per identifier: ``CLAIMED`` (send it), ``DELIVERED`` (already counted:
  answer "deduplicated"), or ``PENDING`` (another sender holds it now: ask again shortly).
- ``mark_delivered`` after Stripe accepted the batch; ``release`` after it failed.
- ``renew`` while a claimed batch is out (sending, then settling): a full lease again for
  each claim still the owner's, so a slow send never lets the lease run out under a live
  owner; the batcher renews every third of the lease and never sends a claim it lost.

A crash between Stripe accepting and ``mark_delivered`` leaves a pending claim that expires
after the lease; the redelivered record then claims and sends again, and Stripe's own 24-hour
identifier dedup absorbs that second send. Keys are scoped per Stripe account (identifiers are
unique per account).

``memory.MemoryIdentifierLedger`` keeps this in process (bounded, for one replica and for
tests); ``redis.RedisIdentifierLedger`` shares it between replicas and keeps it across
restarts. Both keep ``protocol.IdentifierLedger``.
"""
