"""Traffic policy: weighted split, sticky assignment, overrides and shadow copies (pure code).

The statistics of experiments (``modelport.stats``) and their decisions come with the
experiments issue; this package holds the assignment every gateway replica computes alike.
"""

from __future__ import annotations

from modelport.experiments.assignment import Assignment, Slot, TrafficPlan, unit_position

__all__ = ["Assignment", "Slot", "TrafficPlan", "unit_position"]
