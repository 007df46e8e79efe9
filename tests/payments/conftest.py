from __future__ import annotations

import pytest

from tests.bookings.conftest import clock, learner, mentor, mentor_api, other_learner  # noqa: F401
from tests.conftest import STRIPE_TEST_SETTINGS
from tests.helpers import STRIPE_SETTINGS
from tests.support.stripe_client import StripeTestClient

WEBHOOK_SECRET = STRIPE_TEST_SETTINGS["STRIPE_WEBHOOK_SECRET"]


@pytest.fixture
def stripe_client() -> StripeTestClient:
    return StripeTestClient(STRIPE_SETTINGS["STRIPE_API_BASE"], STRIPE_SETTINGS["STRIPE_SECRET_KEY"])
