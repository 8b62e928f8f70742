"""The server driven by the KServe SDK's REST client, installed in its own environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"


def test_kserve_rest_client(url: str) -> None:
    if not KSERVE_PYTHON.exists():
        pytest.fail("the KServe SDK environment is missing: run scripts/setup")
    done = subprocess.run(
        [str(KSERVE_PYTHON), str(Path(__file__).with_name("kserve_client_check.py")), url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["live"] is True and found["ready"] is True and found["model_ready"] is True
    for binary in (False, True):
        result = found[f"binary={binary}"]
        assert result["id"] == f"k-{binary}"
        assert result["outputs"]["predict"] == [0, 2]
        assert len(result["outputs"]["predict_proba"]) == 2
    assert "400" in found["error"] and "[-1, 4]" in found["error"]
