"""What every request carries: Conductor's fields and the common ones (the envelope).

Each operation's request subclasses :class:`OperationRequest`, which holds the wire settings
(tagged by ``operation``, unknown fields refused, frozen), and only adds its parameters.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec
from msgspec import UNSET, UnsetType

from consumer.contract.requests.fields import (
    AccountId,
    IdempotencyKey,
    IntegrationName,
    LoopIteration,
    TopicName,
)

# Fields every request may carry besides its operation's parameters and Conductor's fields.
COMMON_FIELDS: Final = (
    "operation",
    "idempotency_key",
    "integration",
    "stripe_account",
    "reply_topic",
    "iteration",
)


class ConductorFields(msgspec.Struct, kw_only=True, frozen=True):
    """Conductor's own fields: accepted on every request, echoed into its reply, never sent
    to Stripe. Besides these, any request field whose name starts with `_` (Orkes adds
    `_createdBy`) is echoed too."""

    taskId: str | UnsetType | None = UNSET
    taskRefName: str | UnsetType | None = UNSET
    workflowInstanceId: str | UnsetType | None = UNSET
    workflowType: str | UnsetType | None = UNSET
    workflowVersion: int | UnsetType | None = UNSET
    correlationId: str | UnsetType | None = UNSET
    taskToDomain: dict[str, str] | UnsetType | None = UNSET
    sink: str | UnsetType | None = UNSET
    asyncComplete: bool | UnsetType | None = UNSET
    event_produced: str | UnsetType | None = UNSET
    eventId: str | UnsetType | None = UNSET

    def conductor_fields(self) -> dict[str, Any]:
        """The Conductor fields that were given, ready to echo."""
        return {
            name: value for name in CONDUCTOR_FIELDS if (value := getattr(self, name)) is not UNSET
        }


CONDUCTOR_FIELDS: Final = ConductorFields.__struct_fields__


class OperationRequest(
    ConductorFields,
    tag_field="operation",
    forbid_unknown_fields=True,
    omit_defaults=True,
    kw_only=True,
    frozen=True,
):
    """Fields every operation request carries. Subclasses add their operation's parameters."""

    idempotency_key: IdempotencyKey | UnsetType | None = UNSET
    integration: IntegrationName | None = "default"  # null: `default` (see credential_name)
    stripe_account: AccountId | UnsetType | None = UNSET
    reply_topic: TopicName | UnsetType | None = UNSET
    # A common field, not one of Conductor's: Conductor puts no iteration in an EVENT task's
    # payload (the workflow author passes it), and the reply does not echo it.
    iteration: LoopIteration | UnsetType | None = UNSET

    summary: ClassVar[str] = ""

    @property
    def operation(self) -> str:
        return str(type(self).__struct_config__.tag)

    @property
    def credential_name(self) -> str:
        """The integration whose Stripe key serves this request (null means `default`)."""
        return self.integration or "default"

    def parameters(self) -> dict[str, Any]:
        """The operation's own parameters as given (no common or Conductor fields)."""
        return {
            name: value
            for name in self.__struct_fields__
            if name not in _ENVELOPE_FIELDS and (value := getattr(self, name)) is not UNSET
        }

    def check(self, now: float) -> None:
        """Cross-field rules the types cannot express; raise FieldError. ``now``: Unix time."""


_ENVELOPE_FIELDS: Final = frozenset(COMMON_FIELDS) | frozenset(CONDUCTOR_FIELDS)
