"""Run the real ``modelport`` command in a subprocess, against one data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def modelport(
    home: Path, *args: str, user: str = "alice", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``modelport ARGS`` with ``MODELPORT_HOME=home`` as ``user``; never raises on failure.

    ``MODELPORT_DATABASE_URL`` is dropped from the inherited environment so the command uses
    the SQLite database inside ``home``.
    """
    full = {**os.environ, "MODELPORT_HOME": str(home), "MODELPORT_USER": user, **(env or {})}
    if env is None or "MODELPORT_DATABASE_URL" not in env:
        full.pop("MODELPORT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
