"""Row-aware dynamic batching: a pure policy (:mod:`.policy`) and its asyncio driver.

Requests to one model that arrive close together are concatenated along their first (row)
dimension, run as one call, and split back so every caller gets exactly its own rows of exactly
the outputs it asked for. This package imports only :mod:`modelport.core`; the model is a callable.
"""

from __future__ import annotations

from modelport.batching.batcher import Batcher, BatcherStats, ModelCall, RunMarks
from modelport.batching.policy import Decision, Pending, decide

__all__ = ["Batcher", "BatcherStats", "Decision", "ModelCall", "Pending", "RunMarks", "decide"]
