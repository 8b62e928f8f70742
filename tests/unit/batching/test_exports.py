"""The public surface of ``modelport.batching``."""

from __future__ import annotations

import modelport.batching


def test_exported_names() -> None:
    assert sorted(modelport.batching.__all__) == [
        "Batcher",
        "BatcherStats",
        "Decision",
        "ModelCall",
        "Pending",
        "RunMarks",
        "decide",
    ]
    for name in modelport.batching.__all__:
        assert hasattr(modelport.batching, name), name
