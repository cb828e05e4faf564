"""What the stand-in counts, and ``GET /_standin/stats`` reports: calls (per path, per
second, by status), peak concurrency, executions and replays per idempotency key, injected
faults, meter events delivered per identifier."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    calls: int = 0
    status_counts: Counter[int] = field(default_factory=Counter)
    calls_by_path: Counter[str] = field(default_factory=Counter)
    calls_per_second: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    peak_concurrency: int = 0
    executions: Counter[str] = field(default_factory=Counter)  # side effects per key
    # per key: the operation (method and path) and parameters of its first execution, and
    # how many times it executed: "one logical request, one key" is checkable from this
    executed_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    replays: int = 0
    faults_injected: int = 0
    meter_deliveries: Counter[str] = field(default_factory=Counter)  # per identifier
    meter_stream_requests: int = 0
    meter_sessions: int = 0
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=2000))
    recent_stream_events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def summary(self, full: bool) -> dict[str, Any]:
        per_second = sorted(self.calls_per_second.items())
        busiest = max((count for _, count in per_second[1:-1]), default=0)
        result: dict[str, Any] = {
            "calls": self.calls,
            "in_flight": self.in_flight,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "calls_by_path": dict(self.calls_by_path),
            "peak_concurrency": self.peak_concurrency,
            "max_calls_in_one_full_second": busiest,
            "executions_total": sum(self.executions.values()),
            "keys_executed": len(self.executions),
            "keys_executed_more_than_once": sorted(k for k, n in self.executions.items() if n > 1),
            "replays": self.replays,
            "faults_injected": self.faults_injected,
            "meter_events_delivered": sum(self.meter_deliveries.values()),
            "meter_identifiers": len(self.meter_deliveries),
            "meter_identifiers_delivered_more_than_once": sorted(
                k for k, n in self.meter_deliveries.items() if n > 1
            ),
            "meter_stream_requests": self.meter_stream_requests,
            "meter_sessions": self.meter_sessions,
        }
        if full:
            result["executions"] = dict(self.executions)
            result["executed_requests"] = self.executed_requests
            result["meter_deliveries"] = dict(self.meter_deliveries)
            result["calls_per_second"] = {str(k): v for k, v in per_second}
            result["recent"] = list(self.recent)
            result["recent_stream_events"] = list(self.recent_stream_events)
        return result
