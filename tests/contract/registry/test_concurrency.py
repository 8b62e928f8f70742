"""Several processes writing the same model at once: no errors, no lost or duplicate updates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from modelport.registry import MetadataStore

from ._support import FakeClock

WORKER = Path(__file__).with_name("_race_worker.py")
PROCESSES = 4
EACH = 5


def _barrier(procs: list[subprocess.Popen[str]], expect: str) -> None:
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != expect:
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"worker said {line!r}, expected {expect!r}; stderr:\n{err}")


def _release(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def test_concurrent_open_and_register(backend_url: str, clock: FakeClock) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), backend_url, "race", str(EACH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        _barrier(procs, "ready")
        _release(procs)  # all open (and migrate) the new database at once
        _barrier(procs, "opened")
        _release(procs)  # all register at once
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for versions in results:
        assert len(versions) == EACH
        assert versions == sorted(versions), "one process sees its own versions increase"
    assigned = sorted(v for versions in results for v in versions)
    assert assigned == list(range(1, PROCESSES * EACH + 1))
    with MetadataStore(backend_url, clock) as store:
        assert [v.version for v in store.list_versions("race")] == assigned
        assert store.list_models()[0].version_count == PROCESSES * EACH
        history = store.alias_history("race", "hot")
    # Every move starts where the previous one ended: no move was made from a stale read.
    assert history[0].previous_version is None
    for before, after in zip(history, history[1:], strict=False):
        assert after.previous_version == before.version
    assert PROCESSES <= len(history) <= PROCESSES * EACH
