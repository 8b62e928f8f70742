"""``modelport --help``, ``--version`` and ``models list`` start without the heavy modules.

Start time is what a user feels on every command; it is measured in the commit messages, and
asserted here through what it depends on: which modules a command imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelport
from tests.e2e._cli import modelport as run_modelport

pytestmark = pytest.mark.slow

SERVING = ("uvicorn", "grpc", "cryptography", "onnxruntime", "sklearn", "httpx", "numpy")
"""Never needed to list models or print help: servers, TLS, crypto, frameworks, HTTP clients,
and numpy (only a version's signature needs it)."""

STORAGE = ("sqlalchemy", "alembic")
"""Needed by commands that open the metadata database, and by nothing else."""

_PROBE = """
import json, sys
from modelport.cli.main import main
sys.argv = ["modelport", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted({m.split(".")[0] for m in sys.modules})
sys.stderr.write("\\nMODULES " + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def imported_by(home: Path, *args: str) -> tuple[set[str], int, str]:
    """Run ``modelport ARGS`` in a fresh interpreter; return the top-level modules it imported."""
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    env.pop("MODELPORT_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stderr.rpartition("MODULES ")[2])
    return set(report["loaded"]), report["code"], done.stdout


@pytest.mark.parametrize("args", [(), ("--help",), ("--version",)])
def test_help_and_version_import_no_heavy_module(tmp_path: Path, args: tuple[str, ...]) -> None:
    loaded, code, _ = imported_by(tmp_path, *args)
    assert code in (0, 2)  # no arguments prints the help and exits 2, as click does
    assert loaded.isdisjoint(SERVING + STORAGE), sorted(loaded & {*SERVING, *STORAGE})


def test_models_list_opens_the_database_and_nothing_heavier(tmp_path: Path) -> None:
    loaded, code, out = imported_by(tmp_path, "models", "list", "--json")
    assert code == 0 and json.loads(out) == []
    assert "sqlalchemy" in loaded
    assert loaded.isdisjoint(SERVING), sorted(loaded & set(SERVING))


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    done = run_modelport(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"modelport {modelport.__version__}"


def test_help_lists_every_command_with_its_summary(tmp_path: Path) -> None:
    done = run_modelport(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for command in (
        "register",
        "apply",
        "deployments",
        "models",
        "alias",
        "serve",
        "predict",
        "keys",
        "audit",
        "certs",
    ):
        assert command in done.stdout, command
    assert "Serve models over REST and gRPC" in done.stdout
    assert "tamper-evident audit log" in done.stdout
    assert "--version" in done.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("serve", "--help"), "--tls-cert"),
        (("audit", "--help"), "verify"),
        (("audit", "list", "--help"), "--since"),
        (("keys", "create", "--help"), "--role"),
        (("certs", "dev", "--help"), "--client-cn"),
        (("predict", "--help"), "--data"),
        (("register", "--help"), "--training-data"),
    ],
)
def test_every_command_still_has_its_own_help(
    tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    done = run_modelport(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert fragment in done.stdout
