"""Traffic policy and the experiments' records: assignment (pure code), deployments, feedback.

``assignment`` is the traffic policy every gateway replica computes alike (weighted split,
sticky assignment, overrides and shadow copies); ``store`` keeps deployments and ``feedback``
the true outcomes of logged predictions in the metadata database. The statistics experiments
decide with are :mod:`modelport.stats`.
"""

from __future__ import annotations

from modelport.experiments.assignment import Assignment, Slot, TrafficPlan, unit_position
from modelport.experiments.feedback import Feedback, FeedbackKind, FeedbackStore, FeedbackWritten

__all__ = [
    "Assignment",
    "Feedback",
    "FeedbackKind",
    "FeedbackStore",
    "FeedbackWritten",
    "Slot",
    "TrafficPlan",
    "unit_position",
]
