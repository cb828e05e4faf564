"""Balance: the account's available and pending funds."""

from __future__ import annotations

from typing import ClassVar

from consumer.contract.requests.base import OperationRequest


class GetBalance(OperationRequest, tag="get_balance", kw_only=True, frozen=True):
    summary: ClassVar[str] = "The account's available and pending balance"
