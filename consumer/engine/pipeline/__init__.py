"""The consumer loop: fetch, dispatch by key, deliver replies, commit what is answered. Imports
the processor, the scheduler and offsets beside it, and the layers below the engine.

::

    fetch (getmany) ─► track offset ─► per-key scheduler ─► processor ─► deliver reply/DLQ
                                                                          (acks=all)
                                                             ─► offset done ─► periodic commit

Rules that keep it correct:

- An offset is committed only after the reply (and DLQ record) for it, and for every earlier
  offset of its partition, is acknowledged by Kafka. A crash at any point means redelivery,
  never loss; idempotency keys make redelivery safe.
- The loop never waits on work: it keeps fetching (aiokafka's liveness counts time between
  fetches) and pauses partitions while too much work is buffered, resuming below half.
- On revoke: work not yet started for those partitions is withdrawn (the new owner redoes
  it); started work gets a bounded time to finish; then what is answered is committed. Only
  started work is waited for, so a backlog never makes a rebalance wait its full timeout.
  Started means: a request's job is running, or its reply waits in the producer's batch
  for Kafka's acknowledgement (``finishing.py``; the job's slot is then free); a meter
  event's batch holds a sending slot (its identifiers claimed in the ledger, on their way
  to Stripe). A meter event still queued,
  waiting for a slot or for a retry's backoff is not started.
- While Stripe rejects an integration's key, its requests and meter events are held outside
  the worker slots (``held_requests.py``), at most ``credential_hold_seconds``; then each is
  answered `FAILED` (reply or DLQ) and its offset committed like any other.
- On stop: fetching stops, unstarted work is withdrawn, started work drains within the grace
  period, answered offsets are committed; unfinished work is abandoned uncommitted, to be
  redelivered.
"""

from consumer.engine.pipeline.loop import Pipeline
from consumer.engine.pipeline.ports import PipelineLimits

__all__ = ["Pipeline", "PipelineLimits"]
