"""Which integrations' keys Stripe rejects, and the one probe per interval that notices when a
key works again.

A 401 for a request that names no connected account means Stripe rejects the integration's
key: every request of that integration would fail the same way, and Conductor would see a
wall of failed tasks for what is one operator problem (a key rolled, a secret not yet
updated). The gate closes for that integration: its requests are not sent (``check`` raises
:class:`CredentialHeld`) and the pipeline holds them outside the worker
slots, for at most ``CONSUMER_CREDENTIAL_HOLD_SECONDS``; the ``credential_rejected`` metric
goes to 1 and readiness fails, so the alert fires.

While the gate is closed, one probe every ``probe_interval`` asks Stripe whether the key
works, however many requests are held (the probe is a read, ``GET /v1/balance``, made by
the executor). When Stripe accepts the key, the gate opens and the held requests run.

A 401 or 403 for a request that names a connected account concerns that account only: it
fails that request and never reaches the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from consumer.contract.reply import ReplyError
from consumer.observability.logs import get_logger

# True: Stripe accepts the key; False: it still rejects it; None: no answer to go by.
Probe = Callable[[], Awaitable[bool | None]]
Listener = Callable[[str, bool], None]  # (integration, rejected now)
_log = get_logger()


class CredentialHeld(Exception):
    """Stripe rejects this integration's key (a 401 for a request naming no connected
    account): the request was not sent, or was refused, and waits for the key to work."""

    def __init__(self, integration: str) -> None:
        super().__init__(f"Stripe rejects the key of integration {integration!r}")
        self.integration = integration


@dataclass(slots=True)
class _Rejection:
    detail: ReplyError  # what Stripe said (already redacted)
    prober: asyncio.Task[None]


class CredentialGate:
    def __init__(
        self,
        probe_interval_seconds: float = 30.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._probe_interval = probe_interval_seconds
        self._sleep = sleep
        self._rejected: dict[str, _Rejection] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call ``listener(integration, rejected)`` whenever the gate closes or opens."""
        self._listeners.append(listener)

    def rejected(self) -> set[str]:
        return set(self._rejected)

    def is_rejected(self, integration: str) -> bool:
        return integration in self._rejected

    def check(self, integration: str) -> None:
        """Raise CredentialHeld while Stripe rejects this integration's key."""
        if integration in self._rejected:
            raise CredentialHeld(integration)

    def rejection(self, integration: str) -> ReplyError | None:
        """Stripe's answer that closed the gate (the held requests' eventual error)."""
        rejection = self._rejected.get(integration)
        return rejection.detail if rejection is not None else None

    def reject(self, integration: str, detail: ReplyError, probe: Probe) -> bool:
        """Close the gate for ``integration`` (Stripe answered 401 for its key); start probing.
        True when it was open until now."""
        rejection = self._rejected.get(integration)
        if rejection is not None:
            rejection.detail = detail
            return False
        prober = asyncio.create_task(self._probe_until_accepted(integration, probe))
        self._rejected[integration] = _Rejection(detail, prober)
        self._notify(integration, True)
        return True

    def accept(self, integration: str) -> None:
        """Open the gate: Stripe accepts the key again."""
        rejection = self._rejected.pop(integration, None)
        if rejection is None:
            return
        if rejection.prober is not asyncio.current_task():
            rejection.prober.cancel()
        self._notify(integration, False)

    async def close(self) -> None:
        """Stop probing (shutdown)."""
        probers = [rejection.prober for rejection in self._rejected.values()]
        for prober in probers:
            prober.cancel()
        for prober in probers:
            with contextlib.suppress(asyncio.CancelledError):
                await prober

    async def _probe_until_accepted(self, integration: str, probe: Probe) -> None:
        while True:
            await self._sleep(self._probe_interval)
            try:
                accepted = await probe()
            except Exception:  # a bug in the probe must not stop probing
                _log.exception("probing a rejected key failed", extra={"integration": integration})
                accepted = None
            if accepted:
                _log.warning(
                    "Stripe accepts this integration's key again; releasing its held requests",
                    extra={"integration": integration},
                )
                self.accept(integration)
                return

    def _notify(self, integration: str, rejected: bool) -> None:
        for listener in self._listeners:
            listener(integration, rejected)
