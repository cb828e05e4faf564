"""What the service is measured against, each run as its own process (``python -m
bench.baselines.<name>``): a hand-written consumer, aiokafka alone consuming and producing,
aiokafka alone reading and decoding. They import aiokafka and stripe directly on purpose."""
