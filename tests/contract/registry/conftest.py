"""The registry store suite's fixtures; the backends come from ``tests/contract/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelport.registry import MetadataStore

from ._support import START, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[MetadataStore]:
    with MetadataStore(backend_url, clock) as opened:
        yield opened
