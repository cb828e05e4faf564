"""What crosses the wire: the requests and the reply, the codec, the error tree,
idempotency-key derivation, the dead-letter headers and the meter-errors record, one example
per operation. Pure, no I/O; imports nothing of the service.
"""
