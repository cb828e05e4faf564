"""Error report claims in real Redis, a single one and a three-primary cluster: a report
another replica is processing answers BUSY (not "processed"), one finished answers DONE,
and one whose holder let go can be taken again."""

from __future__ import annotations

import pytest

from consumer.metering.verdicts.book import RedisVerdictBook, ReportClaim
from tests.integration.test_ledger_layout import (  # the single/cluster fixtures
    Connect,
    connect,
    redis_url,
)

pytestmark = pytest.mark.integration
__all__ = ["connect", "redis_url"]  # fixtures, used by name


async def test_a_report_held_elsewhere_is_busy_until_finished_or_released(
    connect: Connect,
) -> None:
    """One replica claims: TAKEN; the other: BUSY while it is held; after a release the
    other takes it; once finished, DONE for both."""
    one = RedisVerdictBook(connect(), window_seconds=60, owner="one")
    two = RedisVerdictBook(connect(), window_seconds=60, owner="two")
    assert await one.claim_report("evt_1") is ReportClaim.TAKEN
    assert await two.claim_report("evt_1") is ReportClaim.BUSY
    await two.release_report("evt_1")  # not its claim: nothing happens
    assert await two.claim_report("evt_1") is ReportClaim.BUSY
    await one.release_report("evt_1")  # processing failed there
    assert await two.claim_report("evt_1") is ReportClaim.TAKEN
    await two.finish_report("evt_1")
    assert await one.claim_report("evt_1") is ReportClaim.DONE
    assert await two.claim_report("evt_1") is ReportClaim.DONE
