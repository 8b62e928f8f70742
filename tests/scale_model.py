"""A Python model class whose answer tells which version served: ``y = x * FACTOR``.

Tests write ``FACTOR = N`` and then :data:`SCALE_MODEL` into a file and register it once per
version, so a response's value names the version behind it.
"""

from __future__ import annotations

SCALE_MODEL = """
class Scale:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, inputs):
        return {"y": inputs["x"] * FACTOR}
"""
