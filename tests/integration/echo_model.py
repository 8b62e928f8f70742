"""Python model classes served in the integration tests: they echo every protocol datatype."""

from __future__ import annotations

import numpy as np

TYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


def _signature(types: list[str]) -> dict[str, list[dict[str, object]]]:
    return {
        "inputs": [{"name": t.lower(), "datatype": t, "shape": [-1, -1]} for t in types],
        "outputs": [{"name": f"{t.lower()}_out", "datatype": t, "shape": [-1, -1]} for t in types],
    }


class EchoJson:
    """Returns each input as ``<name>_out``: every datatype JSON can carry."""

    signature = _signature(TYPES)

    def load(self) -> None:
        self.calls = 0

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return {f"{name}_out": value for name, value in inputs.items()}


class EchoBinary(EchoJson):
    """Like :class:`EchoJson` plus BF16, which travels only in binary form."""

    signature = _signature([*TYPES, "BF16"])
