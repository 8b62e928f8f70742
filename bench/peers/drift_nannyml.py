"""NannyML's univariate drift on one size of the benchmark's windows (its own venv; optional).

``UnivariateDriftCalculator`` with its defaults: Jensen-Shannon distance for every column, the
data split by its default chunker (10 chunks of the reference, 10 of the window), each chunk's
alert above the reference chunks' mean plus 3 standard deviations. ``fit`` on the reference is
``setup_s``. A feature's verdict is an alert in any of the window's chunks; its score, the
largest chunk distance.

``--variant chunk10k``: ``chunk_size=10_000`` instead, so that the reference's chunks and the
window's have the same size (the default splits a 10,000-row window into chunks of 1,000 rows
and holds them to a threshold from chunks of 10,000).
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import version
from typing import Any

import nannyml as nml
from drift_common import CATEGORICAL, FEATURES, Verdicts, arguments, run

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def main() -> None:
    args = arguments()

    def prepare(reference: Any) -> Any:
        options = {"chunk_size": 10_000} if args.variant == "chunk10k" else {}
        calculator = nml.UnivariateDriftCalculator(
            column_names=FEATURES, treat_as_categorical=CATEGORICAL, **options
        )
        return calculator.fit(reference)

    def score(calculator: Any, window: Any) -> Verdicts:
        frame = calculator.calculate(window).filter(period="analysis").to_df()
        verdicts = {}
        for name in FEATURES:
            alerts = frame[(name, "jensen_shannon", "alert")]
            values = frame[(name, "jensen_shannon", "value")]
            verdicts[name] = (bool(alerts.any()), float(values.max()), "jensen_shannon")
        return verdicts

    run("nannyml", version("nannyml"), "pandas", prepare, score, args)


if __name__ == "__main__":
    main()
