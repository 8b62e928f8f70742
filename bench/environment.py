"""What a result depends on: the machine and the versions of everything measured."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / "bench" / ".venvs"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory} memory, "
        f"{platform.system()} {platform.release()}"
    )


def _local(names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _in_venv(venv: str, names: list[str]) -> dict[str, str]:
    python = VENVS / venv / "bin" / "python"
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    try:
        done = subprocess.run(
            [str(python), "-c", code, *names], capture_output=True, text=True, timeout=60
        )
        return dict(json.loads(done.stdout))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {name: "not installed" for name in names}


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "src", "pyproject.toml")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return rev + (" + uncommitted changes in src/" if dirty else "")


def wrk_version() -> str:
    return _tool_version(["wrk", "-v"])


def h2load_version() -> str:
    return _tool_version(["h2load", "--version"])


def _tool_version(argv: list[str]) -> str:
    """The first line a tool prints of its version, without wrk's copyright bracket."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split("[")[0].strip() if first else "unknown"


def versions() -> list[tuple[str, str]]:
    """(component, versions) pairs, one line each in RESULTS.md."""
    main = _local(
        [
            "onnxruntime",
            "scikit-learn",
            "skl2onnx",
            "numpy",
            "uvicorn",
            "uvloop",
            "httptools",
            "orjson",
            "grpcio",
        ]
    )
    mlserver = _in_venv(
        "mlserver",
        ["mlserver", "mlserver-sklearn", "scikit-learn", "uvloop", "uvicorn", "fastapi"],
    )
    kserve = _in_venv("kserve", ["kserve", "scikit-learn", "uvicorn", "fastapi"])

    def join(d: dict[str, str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items())

    return [
        ("python", sys.version.split()[0]),
        ("modelport", f"git {git_revision()}"),
        ("modelport environment", join(main)),
        ("MLServer environment", join(mlserver)),
        ("KServe environment", join(kserve)),
        (
            "load generators",
            f"{wrk_version()} (REST); {h2load_version()} via bench/grpc_load.py (gRPC)",
        ),
    ]
