"""Child process of the concurrency test: open a store, register versions, move an alias.

Usage: ``python _race_worker.py URL NAME COUNT``. The parent drives two barriers through stdin
so that every child opens (and migrates) the database at once, then registers COUNT versions and
points the alias ``hot`` at each of them in turn, all at once. Prints ``ready``, ``opened`` and
finally the assigned version numbers, one line each.
"""

from __future__ import annotations

import json
import sys

from modelport.core.clock import SystemClock
from modelport.registry import Lineage, MetadataStore, NewVersion


def main(url: str, name: str, count: int) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    store = MetadataStore(url, SystemClock())
    try:
        print("opened", flush=True)
        sys.stdin.readline()
        versions = [
            store.create_version(
                NewVersion(
                    name=name,
                    artifact_digest="sha256:" + "0" * 64,
                    artifact_size=1,
                    artifact_filename="model.bin",
                    framework="python",
                    lineage=Lineage(registered_by="race"),
                )
            ).version
            for _ in range(count)
        ]
        for version in versions:
            store.set_alias(name, "hot", version, f"worker-{versions[0]}")
    finally:
        store.close()
    print(json.dumps(versions), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
