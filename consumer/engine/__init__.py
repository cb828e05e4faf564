"""The concurrency engine: offsets, per-key scheduling, reply memory, retries, the loop."""
