"""`make demo`'s metrics snapshot: counters summed over the service processes, and the p99
read from the histogram, operations and meter events apart."""

from __future__ import annotations

from tests.support.stack import load_local_script

demo_story = load_local_script("demo_story")


def metrics(completed: int, meter_fast: int, meter_slow: int) -> str:
    """A /metrics page in Prometheus' text format, shaped as the service writes it."""
    operation = 'operation="create_charge"'
    meter = 'operation="create_meter_event"'
    return f"""# TYPE stripe_consumer_requests counter
stripe_consumer_requests_total{{operation="create_charge",status="COMPLETED"}} {completed}
stripe_consumer_requests_total{{{meter},status="NO_REPLY"}} {meter_fast + meter_slow}
# TYPE stripe_consumer_request_duration_seconds histogram
stripe_consumer_request_duration_seconds_bucket{{{operation},le="0.1"}} {completed - 1}
stripe_consumer_request_duration_seconds_bucket{{{operation},le="1.0"}} {completed}
stripe_consumer_request_duration_seconds_bucket{{{operation},le="+Inf"}} {completed}
stripe_consumer_request_duration_seconds_count{{{operation}}} {completed}
stripe_consumer_request_duration_seconds_sum{{{operation}}} 1.0
stripe_consumer_request_duration_seconds_bucket{{{meter},le="0.1"}} {meter_fast}
stripe_consumer_request_duration_seconds_bucket{{{meter},le="1.0"}} {meter_fast}
stripe_consumer_request_duration_seconds_bucket{{{meter},le="+Inf"}} {meter_fast + meter_slow}
stripe_consumer_request_duration_seconds_count{{{meter}}} {meter_fast + meter_slow}
stripe_consumer_request_duration_seconds_sum{{{meter}}} 1.0
# TYPE stripe_consumer_meter_events counter
stripe_consumer_meter_events_total{{api="v2_stream"}} {meter_fast + meter_slow}
# TYPE stripe_consumer_dlq counter
stripe_consumer_dlq_total{{reason="rejected"}} 1
"""


def test_snapshot_sums_processes_and_reads_the_p99_bucket() -> None:
    """Two processes' pages add up; the p99 is the bucket bound reaching 99% (with 1 slow
    operation in 100 it is the 0.1 s bucket; with 2 in 100, the 1 s one)."""
    snapshot = demo_story.Snapshot()
    snapshot.add(metrics(completed=50, meter_fast=1000, meter_slow=0))
    snapshot.add(metrics(completed=50, meter_fast=990, meter_slow=10))
    assert snapshot.requests == {"COMPLETED": 100, "NO_REPLY": 2000}
    assert snapshot.meter_events == {"v2_stream": 2000}
    assert snapshot.dead_letters == {"rejected": 2}
    assert demo_story.Snapshot.p99(snapshot.operation_buckets) == 1.0
    assert demo_story.Snapshot.p99(snapshot.meter_buckets) == 0.1
    lines = snapshot.render()
    assert lines[0] == "requests answered, by reply status: NO_REPLY 2,000, COMPLETED 100"
    assert "operations <= 1 s of 100; meter events <= 0.1 s of 2,000" in lines[1]
