"""Evidently's data drift preset on one size of the benchmark's windows (its own venv).

``Report([DataDriftPreset()])`` as shipped: the method per column is Evidently's choice
(``--variant default``), or PSI for every column (``--variant psi``: ``DataDriftPreset(
method="psi")``, its default threshold). Evidently keeps no reference profile: the reference
Dataset is made once (``setup_s``), and every run compares its rows with the window's again.
Each window's verdict per column is the preset's own test ("Value Drift for column ..."
failed), which is why the report is run with ``include_tests=True``: the drift is computed
either way, the flag only adds the test results to the snapshot.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from drift_common import CATEGORICAL, NUMERIC, Verdicts, arguments, run
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

DEFINITION = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
PREFIX = "Value Drift for column "


def main() -> None:
    args = arguments()
    options = {"method": "psi"} if args.variant == "psi" else {}

    def prepare(reference: Any) -> Any:
        return Dataset.from_pandas(reference, data_definition=DEFINITION)

    def score(reference: Any, window: Any) -> Verdicts:
        current = Dataset.from_pandas(window, data_definition=DEFINITION)
        report = Report([DataDriftPreset(**options)], include_tests=True)
        snapshot = report.run(current_data=current, reference_data=reference).dict()
        scores = {}
        for metric in snapshot["metrics"]:
            config = metric["config"]
            if config.get("type", "").endswith(":ValueDrift"):
                scores[config["column"]] = (float(metric["value"]), config["method"])
        verdicts = {}
        for test in snapshot["tests"]:
            if test["name"].startswith(PREFIX):
                column = test["name"][len(PREFIX) :]
                value, method = scores[column]
                verdicts[column] = (test["status"] == "FAIL", value, method)
        return verdicts

    run("evidently", version("evidently"), "pandas", prepare, score, args)


if __name__ == "__main__":
    main()
