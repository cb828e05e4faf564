"""``make bench`` (``python -m bench.run``): the harness, the scenarios (one module per
figure), the report, and the baselines the service is measured against. It imports the
service's Kafka code and the test support (stack, stand-in, service process) via harness.py."""
