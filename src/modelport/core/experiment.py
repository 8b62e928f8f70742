"""The Experiment resource: a controlled rollout of a deployment's treatment against its control.

An experiment compares two variants of one deployment on live traffic, evaluates them on a
schedule and acts on its own: it promotes the treatment, rolls it back, or calls the experiment
inconclusive at its maximum duration. Declared in YAML and applied with ``modelport apply -f``::

    apiVersion: modelport.io/v1
    kind: Experiment
    metadata:
      name: fraud-v4
    spec:
      deployment: fraud
      control: current             # the deployment's control variant
      treatment: candidate         # its treatment variant
      task: classification         # feedback is a label (regression: a value)
      output: label                # the output holding the prediction (default: the first)
      primary:
        metric: accuracy
      guardrails:
        - metric: error_rate
          tolerance: 0.01          # the treatment may be worse by 1 point at most
        - metric: latency_p99
          tolerance: 20%           # ... or by 20% of the control's value
      alpha: 0.05
      minSamples: 500
      maxDuration: 7d
      steps:                       # a canary: the treatment's weight, step by step
        - {weight: 5, minDuration: 10m, minSamples: 200}
        - {weight: 25, minDuration: 30m}
        - {weight: 50, minDuration: 1h}
      promotion:
        alias: production          # moved to the treatment's version when it is promoted

Durations are seconds (a number) or text with a unit: ``90s``, ``10m``, ``2h``, ``7d``. How the
metrics are tested and decisions taken is documented in :mod:`modelport.experiments.analysis`
and in the README's "Experiments" section.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from modelport.core.refs import validate_model_name
from modelport.core.resources import Metadata, Spec, checked, parse_duration, parse_resource

__all__ = [
    "GUARDRAIL_ONLY",
    "METRICS",
    "Experiment",
    "ExperimentSpec",
    "Guardrail",
    "MetricInfo",
    "PrimaryMetric",
    "Promotion",
    "Step",
    "parse_experiment",
]

Task = Literal["classification", "regression"]


class MetricInfo:
    """What a metric is: which task it needs, which direction is better, how it is observed.

    Attributes:
        name: The metric's name in documents.
        task: The task whose feedback it needs; ``None`` for metrics of every request.
        lower_is_better: Whether a smaller value is the better one.
        needs_class: Whether it is computed for one class (``class:`` in the document).
    """

    __slots__ = ("lower_is_better", "name", "needs_class", "task")

    def __init__(
        self, name: str, task: Task | None, lower_is_better: bool, needs_class: bool = False
    ) -> None:
        self.name = name
        self.task = task
        self.lower_is_better = lower_is_better
        self.needs_class = needs_class


METRICS: Final[dict[str, MetricInfo]] = {
    info.name: info
    for info in (
        MetricInfo("error_rate", None, lower_is_better=True),
        MetricInfo("latency_mean", None, lower_is_better=True),
        MetricInfo("latency_p50", None, lower_is_better=True),
        MetricInfo("latency_p95", None, lower_is_better=True),
        MetricInfo("latency_p99", None, lower_is_better=True),
        MetricInfo("cpu_ms", None, lower_is_better=True),
        MetricInfo("accuracy", "classification", lower_is_better=False),
        MetricInfo("precision", "classification", lower_is_better=False, needs_class=True),
        MetricInfo("recall", "classification", lower_is_better=False, needs_class=True),
        MetricInfo("mae", "regression", lower_is_better=True),
        MetricInfo("rmse", "regression", lower_is_better=True),
    )
}
"""The metrics an experiment can test, by name. F1 is reported (with a bootstrap interval) but
not tested: it is not a mean of observations, so no always-valid sequential test applies."""

GUARDRAIL_ONLY: Final = frozenset({"latency_p50", "latency_p95", "latency_p99"})
"""Quantiles: tested as guardrails (the share of requests slower than the allowed quantile),
not as a primary metric."""


def _metric(name: str, klass: str | None, task: Task, where: str) -> None:
    info = METRICS.get(name)
    if info is None:
        raise ValueError(
            f"{where}: unknown metric {name!r}; expected one of {', '.join(METRICS)}"
            + (" (f1 is reported, not tested: use precision and recall)" if name == "f1" else "")
        )
    if info.task is not None and info.task != task:
        raise ValueError(f"{where}: {name} is a {info.task} metric, but the task is {task}")
    if info.needs_class and klass is None:
        raise ValueError(f"{where}: {name} is computed for one class; give class")
    if not info.needs_class and klass is not None:
        raise ValueError(f"{where}: class is for precision and recall, not {name}")


class PrimaryMetric(Spec):
    """The metric the experiment is decided on."""

    metric: str
    """``accuracy``, ``precision``, ``recall`` (classification), ``mae``, ``rmse`` (regression),
    ``error_rate``, ``latency_mean`` or ``cpu_ms``."""

    class_: str | None = Field(default=None, alias="class")
    """The class of ``precision`` and ``recall`` (as the label is written: ``"1"``, ``"fraud"``)."""

    minimum_effect: float | None = Field(default=None, gt=0)
    """The smallest difference worth detecting, in the metric's unit; it sets the spread of the
    sequential test's mixture (tau). Default: a tenth of the metric's standard deviation."""

    @field_validator("class_", mode="before")
    @classmethod
    def _class(cls, value: object) -> object:
        return _label_text(value)


class Guardrail(Spec):
    """A metric the treatment must not make worse by more than a tolerance."""

    metric: str
    """Any metric of :data:`METRICS`, quantiles of latency included."""

    class_: str | None = Field(default=None, alias="class")
    """The class of ``precision`` and ``recall``."""

    tolerance: float | str = 0.0
    """How much worse the treatment may be: a number in the metric's unit (``0.01`` error rate,
    ``20`` ms), or a percentage of the control's value (``"10%"``)."""

    @field_validator("class_", mode="before")
    @classmethod
    def _class(cls, value: object) -> object:
        return _label_text(value)

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            number = value.strip().removesuffix("%")
            if number == value.strip() or not _is_number(number) or float(number) < 0:
                raise ValueError("expected a number >= 0 or a percentage such as '10%'")
            return f"{float(number):g}%"
        if not math.isfinite(value) or value < 0:
            raise ValueError("expected a number >= 0")
        return value

    def allowed(self, control: float) -> float:
        """The tolerance in the metric's unit, given the control's estimate."""
        if isinstance(self.tolerance, str):
            return abs(control) * float(self.tolerance.removesuffix("%")) / 100.0
        return float(self.tolerance)


class Step(Spec):
    """One step of a canary: the treatment's weight, and how long and how much before the next."""

    weight: float = Field(gt=0.0, le=100.0)
    """Percent of the deployment's traffic the treatment gets in this step."""

    min_duration: float = 0.0
    """Seconds (or ``10m``...) the step lasts at least."""

    min_samples: int = Field(default=0, ge=0)
    """Requests each arm must have answered in this step before the next."""

    @field_validator("min_duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class Promotion(Spec):
    """What a promotion does besides giving the treatment all the traffic."""

    alias: str | None = None
    """The registry alias moved to the treatment's version (recorded in the alias history).
    Default: the alias the control variant follows (``model: fraud@production``), if any."""

    @field_validator("alias")
    @classmethod
    def _alias(cls, alias: str | None) -> str | None:
        return None if alias is None else checked(validate_model_name, alias)


class ExperimentSpec(Spec):
    """What is compared, on which metrics, and how decisions are taken."""

    deployment: str
    """The deployment whose traffic is split."""

    control: str
    """The variant (role ``control``) the treatment is compared with."""

    treatment: str
    """The variant (role ``treatment``) under test."""

    task: Task = "classification"
    """``classification``: feedback is a label; ``regression``: feedback is a number."""

    output: str | None = None
    """The output tensor holding the prediction; default: the first output."""

    score_output: str | None = None
    """An output with a score (a probability vector's last element, or a number), for the score
    differences of shadow comparisons; default: none."""

    primary: PrimaryMetric
    """The metric the experiment is decided on."""

    guardrails: list[Guardrail] = Field(
        default_factory=lambda: [Guardrail(metric="error_rate", tolerance=0.0)]
    )
    """Metrics the treatment must not degrade; any alarm rolls it back. Default: the error
    rate, with no tolerance."""

    alpha: float = Field(default=0.05, gt=0.0, le=0.2)
    """Significance level of the primary test; the guardrails share it (Bonferroni)."""

    min_samples: int = Field(default=500, ge=1)
    """Observations of a metric each arm needs before that metric can decide anything."""

    max_duration: float = 7 * 86400.0
    """After this long without a decision the experiment ends inconclusive (the control keeps
    all the traffic)."""

    evaluate_every: float = 60.0
    """Seconds between two evaluations."""

    steps: list[Step] = Field(default_factory=list)
    """A canary's steps; none: an A/B test at the deployment's current weights."""

    promotion: Promotion = Promotion()
    """What a promotion does besides moving all the traffic."""

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, name: str) -> str:
        return checked(validate_model_name, name)

    @field_validator("output", "score_output")
    @classmethod
    def _output(cls, name: str | None) -> str | None:
        if name is not None and not (0 < len(name) <= 256 and name.isprintable()):
            raise ValueError("expected an output tensor's name: 1 to 256 printable characters")
        return name

    @field_validator("max_duration", "evaluate_every", mode="before")
    @classmethod
    def _durations(cls, value: object) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.control == self.treatment:
            raise ValueError("control and treatment must be two different variants")
        _metric(self.primary.metric, self.primary.class_, self.task, "primary")
        if self.primary.metric in GUARDRAIL_ONLY:
            raise ValueError(
                f"primary: {self.primary.metric} is a quantile, tested only as a guardrail; "
                "decide on latency_mean, or keep the quantile as a guardrail"
            )
        for index, guardrail in enumerate(self.guardrails):
            _metric(guardrail.metric, guardrail.class_, self.task, f"guardrails[{index}]")
        weights = [step.weight for step in self.steps]
        if weights != sorted(set(weights)):
            raise ValueError("the steps' weights must grow from one step to the next")
        if self.evaluate_every <= 0:
            raise ValueError("evaluateEvery must be more than 0 seconds")
        if self.max_duration <= 0:
            raise ValueError("maxDuration must be more than 0 seconds")
        return self


class Experiment(Spec):
    """An Experiment document."""

    api_version: Literal["modelport.io/v1"]
    """Always ``modelport.io/v1``."""

    kind: Literal["Experiment"]
    """Always ``Experiment``."""

    metadata: Metadata
    """Name and labels."""

    spec: ExperimentSpec
    """What is compared and how it is decided."""

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.metadata.name

    def document(self) -> dict[str, Any]:
        """The experiment as a document (camelCase keys, defaults included)."""
        return self.model_dump(mode="json", by_alias=True)


def parse_experiment(document: object) -> Experiment:
    """Validate an Experiment document (parsed YAML or JSON).

    Raises:
        InvalidInput: The document is not a valid Experiment; the message names every bad field
            by its path in the document and says what was expected.
    """
    return parse_resource(Experiment, document)


def _label_text(value: object) -> object:
    """A class as labels are compared: text, booleans as ``true``/``false``, integers plain."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return str(value)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
