"""What the control plane sets with ``POST /_standin/config`` (latency, faults, the clock,
limits, revoked credentials; fields left out take their defaults), and Controls: the one
object through which every part reads the config, the stats and the clock."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .stats import Stats


@dataclass
class Fault:
    """Fail matching requests: ``status`` is an HTTP status, or "timeout" / "reset"."""

    status: int | str = 500
    times: int = 1  # how many matching requests fail (-1: all)
    path_prefix: str = ""
    should_retry: bool | None = None  # sets the Stripe-Should-Retry header when not None
    code: str | None = None  # e.g. "lock_timeout" for a 429
    # Apply the fault after the request took effect: Stripe executed it, the client never
    # learns (a "timeout" then holds the response, as a connection lost after the call).
    after_effect: bool = False


@dataclass
class RandomFault:
    """Fail ``percent`` % of matching requests with ``status`` (a storm: 20% 5xx, 5% 429)."""

    status: int = 500
    percent: float = 0.0
    path_prefix: str = ""


@dataclass
class Config:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    clock_offset_seconds: float = 0.0  # added to the wall clock (idempotency keys' age)
    faults: list[Fault] = field(default_factory=list)
    fault_probability: float = 0.0  # chance of a 500 on any request (after `faults`)
    random_faults: list[RandomFault] = field(default_factory=list)  # after `faults`
    rate_limit_per_second: int = 0  # 0: no limit; else 429 beyond it (1-second windows)
    hang_seconds: float = 120.0  # how long a "timeout" fault holds the request
    session_ttl_seconds: float = 900.0  # v2 meter event session lifetime
    revoked_keys: list[str] = field(default_factory=list)  # 401 for these API keys
    # Connected accounts the platform cannot act for: account id -> HTTP status (403, or 401
    # as API versions before 2016-10-19 answered) for requests naming it in Stripe-Account.
    revoked_accounts: dict[str, int] = field(default_factory=dict)
    # Meter errors (billing.py, events.py): reported this long after the events, naming at
    # most this many identifiers per code (-1: all), pushed signed to the webhook if set.
    error_report_seconds: float = 1.0
    error_sample_limit: int = -1
    webhook_url: str = ""
    webhook_secret: str = ""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Config:
        """The control plane's JSON body as a Config (what it leaves out takes the default)."""
        faults = [Fault(**f) for f in raw.pop("faults", [])]
        storm = [RandomFault(**f) for f in raw.pop("random_faults", [])]
        return cls(**{**asdict(cls()), **raw, "faults": faults, "random_faults": storm})


class Controls:
    """The config the control plane set, the stats it reports, and the stand-in's clock.
    One object for the stand-in's life: a new config or a reset replaces what it holds, so
    a part keeps this object, never the config or the stats themselves."""

    def __init__(self) -> None:
        self.config = Config()
        self.stats = Stats()

    def reset(self) -> None:
        self.config = Config()
        self.stats = Stats()

    def now(self) -> float:
        """The stand-in's clock: the wall clock, moved by ``clock_offset_seconds``."""
        return time.time() + self.config.clock_offset_seconds
