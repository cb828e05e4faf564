"""State the replicas of the group share, kept in Redis: the meter-event identifier ledger, the
Stripe rate limit, the reply and failure memories, the record of deletes sent.

Adapters only: each wraps one use of Redis behind the interface the engine already has an
in-process version of. ``redis_client`` is the only module that imports ``redis``; the others
talk to Redis through its :class:`~consumer.shared_state.redis_client.RedisConnection`.
"""
