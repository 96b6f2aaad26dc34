"""Shared test set-up: the exact-solution helpers sit beside the tests; ../shared is optional."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

REPO = TESTS.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip with a clear message when the checkout has no ../shared."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(
            f"{data} is absent: tests on the shared real images need ../shared beside the checkout"
        )
    return data
