"""The security store suite's fixtures; the backends come from ``tests/contract/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelport.security.store import SecurityStore

from ._support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[SecurityStore]:
    with SecurityStore(backend_url, clock) as opened:
        yield opened
