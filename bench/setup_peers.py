"""Create the peers' virtual environments under bench/.venvs/, idempotently.

Each peer lives in an environment of its own so none of its pins touch modelport's. The peers
load the benchmark models from .joblib files, so their scikit-learn is the very version that
trained them (the one in the environment running this script): pickles are only guaranteed to
load in the version that wrote them.

    python bench/setup_peers.py [--force] [NAME ...]

With no NAME it makes the serving peers' environments (what ``bench/run`` needs). The drift
peers' (``drift-evidently``, ``drift-alibi``, ``drift-nannyml``: ``bench/drift.py``) are made
only when named; they read the benchmark's Parquet files, so each has pyarrow too. The
feature-store peer's (``features-feast``: Feast 0.67 with its DuckDB offline store and its
SQLite and Redis online stores, for ``bench/features_offline.py`` and
``bench/features_online.py``) is also made only when named.

An environment is rebuilt only when its requirement list changed (or with --force); a stamp file
inside it records the list it was built from.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
STAMP = ".bench-requirements"


def peer_requirements() -> dict[str, list[str]]:
    """Requirements of each peer environment, keyed by its folder name."""
    sklearn = f"scikit-learn=={version('scikit-learn')}"
    joblib = f"joblib=={version('joblib')}"
    return {
        # MLServer 1.7.1's parallel workers fail with newer uvloop (its inference pool's event
        # loop setup); 0.21.0 is the release they work with.
        "mlserver": [
            "mlserver==1.7.1",
            "mlserver-sklearn==1.7.1",
            "uvloop==0.21.0",
            sklearn,
            joblib,
        ],
        # Latest KServe; its model server is what `kserve.Model` subclasses run in.
        "kserve": ["kserve", sklearn, joblib],
    }


def drift_requirements() -> dict[str, list[str]]:
    """Requirements of the drift peers' environments (issue 17), made only when named."""
    pyarrow = f"pyarrow=={version('pyarrow')}"
    return {
        # The version issue 17 measured; it does not import with pandas 3 (it declares no upper
        # bound): pandas.core.dtypes.common.infer_dtype_from_object is gone.
        "drift-evidently": ["evidently==0.7.23", "pandas==2.3.3", pyarrow],
        # alibi-detect 0.13.0 installs numpy 1.26, with which pyarrow 26 refuses to import
        # ("requires NumPy 2.0 or newer"); pyarrow 21 reads the files with it.
        "drift-alibi": ["alibi-detect==0.13.0", "pyarrow==21.0.0"],
        # Optional: the benchmark reports it as not installed when this fails. nannyml 0.13.1
        # imports statsmodels without requiring it; pandas 2.3.3 as for Evidently (3 not tried).
        "drift-nannyml": ["nannyml==0.13.1", "statsmodels==0.15.0", "pandas==2.3.3", pyarrow],
    }


def features_requirements() -> dict[str, list[str]]:
    """Requirements of the feature-store peer's environment (issue 18), made only when named."""
    return {
        # Feast 0.67 with the extras its DuckDB offline store (ibis-framework[duckdb]) and Redis
        # online store (redis) need; SQLite's online store needs nothing more.
        "features-feast": FEAST_PINS,
    }


# What `pip install "feast[duckdb,redis]==0.67.0"` resolved to on 2026-12-08 for Python 3.11,
# pinned so that reruns measure the same code. pandas 2.3.3: Feast 0.67 is used with pandas 2
# (as for the drift peers, pandas 3 is not tried); the DuckDB store runs through ibis; dask is
# Feast's default file offline store; hiredis speeds redis-py's replies, as a Feast user has it.
FEAST_PINS = [
    "feast[duckdb,redis]==0.67.0",
    "pandas==2.3.3",
    "duckdb==2.0.1",
    "ibis-framework==12.0.0",
    "dask==2026.11.0",
    "redis==7.4.1",
    "hiredis==3.5.0",
    "pyarrow==26.0.1",
    "numpy==2.4.6",
]


def base_python() -> str:
    """An interpreter both peers support (MLServer 1.7.1 needs Python < 3.13)."""
    if sys.version_info < (3, 13):
        return getattr(sys, "_base_executable", sys.executable)
    for name in ("python3.12", "python3.11", "python3.10"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("setup_peers: MLServer 1.7.1 needs Python 3.10-3.12; none found on PATH")


def ensure(name: str, requirements: list[str], force: bool) -> Path:
    """Create or refresh one peer environment; return its folder."""
    venv = VENVS / name
    wanted = "\n".join(requirements) + "\n"
    stamp = venv / STAMP
    if not force and stamp.is_file() and stamp.read_text() == wanted:
        print(f"setup_peers: {name}: up to date ({venv.relative_to(BENCH.parent)})")
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    print(
        f"setup_peers: {name}: creating {venv.relative_to(BENCH.parent)}: {' '.join(requirements)}"
    )
    log_path = BENCH / ".out" / f"setup-{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    with log_path.open("w") as log:
        for argv in (
            [base_python(), "-m", "venv", str(venv)],
            [*pip, "--upgrade", "pip"],
            [*pip, *requirements],
        ):
            log.write("$ " + " ".join(argv) + "\n")
            log.flush()
            done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                lines = log_path.read_text(errors="replace").splitlines()
                print("\n".join(lines[-15:]))
                raise subprocess.CalledProcessError(done.returncode, argv)
    stamp.write_text(wanted)
    print(f"setup_peers: {name}: installed (log: {log_path.relative_to(BENCH.parent)})")
    return venv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument(
        "peers", nargs="*", help="only these environments (default: the serving peers)"
    )
    args = parser.parse_args()
    optional = drift_requirements() | features_requirements()
    known = peer_requirements() | optional
    unknown = sorted(set(args.peers) - set(known))
    if unknown:
        parser.error(f"unknown environments {unknown}; known: {sorted(known)}")
    failed = []
    for name, requirements in known.items():
        if (args.peers and name not in args.peers) or (not args.peers and name in optional):
            continue
        try:
            ensure(name, requirements, args.force)
        except subprocess.CalledProcessError:
            # A peer that does not install is reported by the benchmark as failed, not fatal.
            print(f"setup_peers: {name}: install failed; its rows will show as failed")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
