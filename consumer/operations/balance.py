"""Balance: the account's available and pending funds."""

from consumer.contract.requests import GetBalance
from consumer.operations.base import Operation, no_params

get_balance = Operation(GetBalance, "GET", "/v1/balance", no_params)
