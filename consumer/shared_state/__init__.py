"""The connection to Redis, where the replicas share state: the only module that imports
redis, its health, SharedStateUnavailable. Imports settings and observability.

Each user of shared state keeps its Redis variant beside its in-process one, behind one
protocol: the identifier ledger (``metering/ledgers/``), the group's rate limit
(``stripe/shared_rate_limit.py``), the reply memory (``engine/reply_memory.py``), the deletes
sent (``stripe/deletes.py``). They implement protocols of the layers that use them, so here
they made the lowest adapter layer import the highest; ``app.py``'s docstring says where each
piece lives with and without Redis.
"""
