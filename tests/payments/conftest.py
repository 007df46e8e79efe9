from __future__ import annotations

import pytest

from tests.helpers import STRIPE_SETTINGS
from tests.support.stripe_client import StripeTestClient


@pytest.fixture
def stripe_client() -> StripeTestClient:
    return StripeTestClient(STRIPE_SETTINGS["STRIPE_API_BASE"], STRIPE_SETTINGS["STRIPE_SECRET_KEY"])
