"""modelport's drift detection on one size of the benchmark's windows (modelport's own venv).

Variants: ``profile``, the reference profiled once (``setup_s``) and each window counted into
its bins and scored, ``detect(profile, profile.count(window))``; ``rows``, ``detect(reference,
window)`` from the raw rows, profiling the reference every time. Columns are numpy arrays as
pyarrow gives them (float64, strings as object arrays with None).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from drift_common import CATEGORICAL, Verdicts, arguments, run

from modelport import drift


def main() -> None:
    args = arguments()

    def prepare(reference: dict[str, Any]) -> Any:
        if args.variant == "rows":
            return reference
        return drift.profile(reference, categorical=CATEGORICAL)

    def score(state: Any, window: dict[str, Any]) -> Verdicts:
        if args.variant == "rows":
            report = drift.detect(state, window, categorical=CATEGORICAL)
        else:
            report = drift.detect(state, state.count(window))
        return {
            f.name: (f.drifted, f.score, f.method + (f"+{f.test}" if f.test else ""))
            for f in report.features
        }

    run("modelport", version("modelport"), "numpy", prepare, score, args)


if __name__ == "__main__":
    main()
