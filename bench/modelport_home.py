"""The ``MODELPORT_HOME`` the benchmark serves from: a fresh home, an API key, registered pickles.

modelport ships with authentication on, so that is what is measured: before any launch the
harness empties ``bench/.out/modelport-home``, creates one ``predictor`` key in it with
``modelport keys create --json`` and gives that key to every client that talks to an
authenticated configuration (wrk, bench/grpc_load.py, the answer check). The key lives only in
this process's memory and the load generators' arguments; it is never printed or written to the
results. The ``-noauth`` configurations run ``modelport serve --no-auth`` for the comparison.

In ``--modelport-artifact joblib`` mode each model's ``.joblib`` is registered first
(``modelport register NAME FILE --sample ROW.npy --no-compile``: modelport loads only pickles it
signed at registration, and ``--no-compile`` keeps the pickle, not an ONNX copy, as what is
served) and served as ``NAME=NAME@VERSION``. The ONNX export is served from its file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench.models import BenchModel

KEY_NAME = "bench"
KEY_FIELDS = ("key", "token", "api_key")  # where `keys create --json` may put the full key


@dataclass
class ModelportHome:
    """What the modelport launches share: the home, the key, and the served model specs."""

    path: Path
    api_key: str | None = field(default=None, repr=False)
    specs: dict[str, str] = field(default_factory=dict)  # model -> `modelport serve` argument
    unavailable: str | None = None  # why no modelport configuration can run, if none can
    notes: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"MODELPORT_HOME": str(self.path)}


def _run(exe: Path, args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run one ``modelport`` command against ``home``, never raising for its exit status."""
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        env={"MODELPORT_HOME": str(home), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        timeout=300,
    )


def _said(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return " | ".join(lines[-2:])[:300] or f"exit status {done.returncode}"


def key_from_json(text: str) -> str | None:
    """The full key in ``modelport keys create --json`` output, or None when there is none."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for name in KEY_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def create_key(exe: Path, home: Path) -> tuple[str | None, str | None]:
    """A new ``predictor`` key in ``home``: (key, None), or (None, why there is none)."""
    try:
        done = _run(
            exe, ["keys", "create", "--role", "predictor", "--name", KEY_NAME, "--json"], home
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`modelport keys create` could not run: {exc}"
    if done.returncode != 0:
        return None, f"`modelport keys create` failed: {_said(done)}"
    key = key_from_json(done.stdout)
    if key is None:
        fields = ", ".join(KEY_FIELDS)
        return None, f"`modelport keys create --json` printed no key (looked for {fields})"
    return key, None


def register(exe: Path, home: Path, model: BenchModel) -> str:
    """Register ``model``'s pickle in ``home``; its ``modelport serve`` argument.

    Raises:
        RuntimeError: The registration failed.
    """
    sample = home.parent / "models" / f"{model.name}.sample.npy"
    sample.parent.mkdir(parents=True, exist_ok=True)
    np.save(sample, np.asarray([model.row], dtype=np.float64))  # FP64, as the requests
    args = ["register", model.name, str(model.joblib_path), "--sample", str(sample), "--no-compile"]
    try:
        done = _run(exe, args, home)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"`modelport register` could not run: {exc}") from None
    if done.returncode != 0:
        raise RuntimeError(f"`modelport register {model.name}` failed: {_said(done)}")
    # A fresh home makes this version 1; read it back rather than assume it.
    found = re.search(rf"registered {re.escape(model.name)}@(\d+)", done.stdout)
    version = found.group(1) if found else "1"
    return f"{model.name}={model.name}@{version}"


def prepare(exe: Path, path: Path, models: dict[str, BenchModel], artifact: str) -> ModelportHome:
    """Empty ``path``, create the key and, for ``joblib``, register the models there."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    home = ModelportHome(path)
    home.api_key, problem = create_key(exe, path)
    if problem:
        home.notes.append(
            f"no API key ({problem}): the authenticated modelport rows ran without one"
        )
    if artifact == "onnx":
        home.specs = {name: f"{name}={m.onnx_path}" for name, m in models.items()}
        return home
    try:
        home.specs = {name: register(exe, path, m) for name, m in models.items()}
    except RuntimeError as exc:
        home.unavailable = str(exc)
    return home
