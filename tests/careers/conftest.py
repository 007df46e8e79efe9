from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.careers.support import load_paths


@pytest.fixture
def paths(client: FlaskClient) -> None:
    """The shipped career paths, in this test's database transaction."""
    load_paths()
