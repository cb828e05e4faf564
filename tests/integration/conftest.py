"""Integration tier: the service in-process against a real broker and stripe-mock."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration
