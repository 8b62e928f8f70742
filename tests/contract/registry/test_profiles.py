"""Reference data profiles of versions: stored, replaced, read back; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from modelport.core.errors import InvalidInput, NotFound
from modelport.registry import MetadataStore

from ._support import FakeClock, new_version

PROFILE = {"features": {"x": {"kind": "numeric", "edges": [0.5, 1.5], "share": [0.2, 0.5, 0.3]}}}


def test_a_profile_is_stored_replaced_and_read_back(store: MetadataStore, clock: FakeClock) -> None:
    store.create_version(new_version("fraud"))
    assert store.get_profile("fraud", 1) is None
    stored = store.set_profile("fraud", 1, PROFILE, 500, "sample", "alice")
    assert store.get_profile("fraud", 1) == stored
    assert (stored.rows, stored.source, stored.created_at) == (500, "sample", clock.now())
    clock.advance(60)
    bigger = {"features": {"x": {**PROFILE["features"]["x"], "share": [0.25, 0.5, 0.25]}}}
    store.set_profile("fraud", 1, bigger, 100_000, "reference sha256:" + "ab" * 32, "bob")
    again = store.get_profile("fraud", 1)
    assert again is not None and again.profile == bigger and again.created_by == "bob"
    assert again.rows == 100_000 and again.created_at == clock.now()


def test_profiles_of_unknown_versions_and_bad_values_are_refused(store: MetadataStore) -> None:
    store.create_version(new_version("fraud"))
    with pytest.raises(NotFound):
        store.set_profile("fraud", 2, PROFILE, 10, "sample", "alice")
    with pytest.raises(NotFound):
        store.get_profile("nope", 1)
    with pytest.raises(InvalidInput, match="at least 1 row"):
        store.set_profile("fraud", 1, PROFILE, 0, "sample", "alice")
    assert store.get_profile("fraud", 1) is None
