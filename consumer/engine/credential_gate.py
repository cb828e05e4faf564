"""Stopping intake for a credential Stripe rejects, instead of burning through the backlog.

When Stripe answers 401 for an integration's key, every queued request for that integration
would fail the same way, and Conductor would see a wall of failed tasks for what is one
operator problem. Instead the gate closes: requests for that credential wait (their offsets
stay uncommitted, back-pressure pauses the partitions), the `credential_rejected` metric goes
to 1 and readiness fails, so the alert fires. Every ``probe_interval`` one request goes
through as a probe; when Stripe accepts it (a rotated key, a restored account), the gate
opens and the backlog drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class CredentialGate:
    def __init__(
        self, probe_interval_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probe_interval = probe_interval_seconds
        self._clock = clock
        self._rejected: dict[str, float] = {}  # integration -> when the next probe may go
        self._opened: dict[str, asyncio.Event] = {}
        self._probing: set[str] = set()

    def rejected(self) -> set[str]:
        return set(self._rejected)

    async def admit(self, integration: str) -> bool:
        """Wait until calls may go; True when this caller is the probe."""
        while integration in self._rejected:
            now = self._clock()
            if integration not in self._probing and now >= self._rejected[integration]:
                self._probing.add(integration)
                return True
            opened = self._opened.setdefault(integration, asyncio.Event())
            timeout = max(0.05, self._rejected[integration] - now)
            try:
                await asyncio.wait_for(opened.wait(), timeout)
            except TimeoutError:
                continue
        return False

    def record(self, integration: str, *, authentication_failed: bool, probe: bool) -> None:
        """Tell the gate how a call went."""
        if probe:
            self._probing.discard(integration)
        if authentication_failed:
            self._rejected[integration] = self._clock() + self._probe_interval
            self._opened.pop(integration, asyncio.Event()).clear()
            return
        if integration in self._rejected:
            del self._rejected[integration]
            event = self._opened.pop(integration, None)
            if event is not None:
                event.set()
