"""Child process of the concurrent-writers test (imported by ``multiprocessing`` spawn)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from modelport.features.online import (
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    open_online_store,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def write_all(
    config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig,
    writer: int,
    count: int,
    barrier: Any,
    results: Any,
) -> None:
    """Write event timestamps ``0..count-1`` (s after T0) in a random order, one row a call.

    Writer ``w`` stamps row ``i`` created at ``2 * i + w`` us after T0, so at equal event
    timestamps writer 1's row is the newer one.
    """
    order = list(range(count))
    random.Random(writer).shuffle(order)
    applied = 0
    with open_online_store(config) as store:
        barrier.wait()
        for i in order:
            applied += store.write(
                "race",
                [("hot", 1)],
                [T0 + timedelta(seconds=i)],
                [T0 + timedelta(microseconds=2 * i + writer)],
                {"i": [i], "writer": [writer]},
            )
    results.put(applied)
