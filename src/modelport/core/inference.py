"""Inference requests and responses, independent of any transport.

A :class:`Tensor` holds its values as a numpy array already shaped as the tensor's ``shape``
(``object`` arrays of ``bytes`` for BYTES). Codecs in ``modelport.protocol`` build these from JSON,
binary or gRPC messages and turn responses back into wire form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from modelport.core.datatypes import Datatype

__all__ = [
    "InferenceRequest",
    "InferenceResponse",
    "Parameters",
    "RequestedOutput",
    "Tensor",
]

ParameterValue = Union[str, int, float, bool]
Parameters = dict[str, ParameterValue]


@dataclass(slots=True)
class Tensor:
    """A named, typed, shaped tensor.

    Attributes:
        name: Tensor name as the model knows it.
        datatype: Protocol datatype.
        shape: Dimensions, row-major.
        data: Values shaped as ``shape`` (numpy ``object`` array of ``bytes`` for BYTES).
        parameters: Per-tensor protocol parameters (``binary_data_size``, ``binary_data``...).
    """

    name: str
    datatype: Datatype
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    """An output the caller asked for, with its parameters (for example ``binary_data``)."""

    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferenceRequest:
    """One inference call.

    Attributes:
        inputs: Input tensors.
        id: Caller's request id, echoed in the response.
        parameters: Request-level parameters (``binary_data_output``, ``timeout``...).
        outputs: Requested outputs; ``None`` means every output of the model.
    """

    inputs: list[Tensor]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None


@dataclass(slots=True)
class InferenceResponse:
    """The answer to an :class:`InferenceRequest`.

    Attributes:
        cpu_ms: CPU time the model spent on this request, in milliseconds, where the process
            that ran it measured it (its share of a batch, by rows); ``None`` otherwise. Not
            part of the protocol: no codec sends it.
    """

    model_name: str
    outputs: list[Tensor]
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    cpu_ms: float | None = None
