"""A model's configuration in Triton's form, from its protocol metadata.

Triton's clients read a model configuration (``tritonclient``'s ``get_model_config``, NVIDIA's
``perf_analyzer``): ``max_batch_size`` and the inputs and outputs with Triton's type names. The
REST answer is that message's JSON form; the gRPC codec builds the same message from the same
names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["config_type", "model_config"]


def config_type(datatype: str) -> str:
    """Return Triton's type name for a protocol datatype (``FP32`` -> ``TYPE_FP32``).

    ``BYTES`` is ``TYPE_STRING`` in Triton's configuration.
    """
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def model_config(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return Triton's model configuration for a model's metadata, as JSON data.

    ``max_batch_size`` is 0: the batch is not implicit but the ``-1`` leading dimension of
    ``dims``, Triton's convention for models that take whole shapes.

    Args:
        metadata: What :meth:`DataPlane.model_metadata` returns (name, platform, inputs,
            outputs).
    """

    def tensors(specs: Any) -> list[dict[str, Any]]:
        return [
            {"name": t["name"], "data_type": config_type(t["datatype"]), "dims": list(t["shape"])}
            for t in specs
        ]

    return {
        "name": metadata["name"],
        "platform": metadata["platform"],
        "max_batch_size": 0,
        "input": tensors(metadata["inputs"]),
        "output": tensors(metadata["outputs"]),
    }
