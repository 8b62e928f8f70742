"""Child process of the concurrency test: open a store, wait for the others, append entries."""

from __future__ import annotations

from typing import Any

from modelport.core.clock import SystemClock
from modelport.security.store import SecurityStore


def append_many(url: str, worker: int, count: int, barrier: Any) -> None:
    """Append ``count`` entries as ``worker-N``, all workers starting at once."""
    store = SecurityStore(url, SystemClock())
    try:
        barrier.wait(timeout=60)
        for i in range(count):
            store.append_audit(
                f"worker-{worker}", "test.append", f"item-{i}", "ok", f"req-{worker}-{i}", {"i": i}
            )
    finally:
        store.close()
