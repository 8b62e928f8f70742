"""Model signatures and the validation of inputs against them.

A signature lists a model's input and output tensors with datatype and shape; ``-1`` marks a
variable dimension (usually the batch). Validation is pure and raises :class:`InvalidInput` with a
message that names the tensor and says what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.core.datatypes import Datatype, from_numpy_dtype, parse_datatype
from modelport.core.errors import InvalidInput
from modelport.core.inference import Tensor

__all__ = ["Signature", "TensorSpec", "validate_inputs"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor of a signature: name, datatype and shape (``-1`` = any size)."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol's metadata form ``{"name", "datatype", "shape"}``."""
        return {"name": self.name, "datatype": self.datatype.value, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TensorSpec:
        """Build a spec from its metadata form.

        Raises:
            ValueError: A field is missing or malformed.
        """
        try:
            name = raw["name"]
            datatype = parse_datatype(raw["datatype"])
            shape = tuple(int(d) for d in raw["shape"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"tensor spec needs name, datatype and shape: {exc}") from None
        if not isinstance(name, str) or not name:
            raise ValueError("tensor spec name must be a non-empty string")
        if any(d < -1 for d in shape):
            raise ValueError(f"tensor spec {name!r} has a dimension below -1: {list(shape)}")
        return cls(name=name, datatype=datatype, shape=shape)

    @classmethod
    def from_array(cls, name: str, array: np.ndarray, batch_dims: int = 1) -> TensorSpec:
        """Describe ``array`` with its first ``batch_dims`` dimensions made variable."""
        shape = tuple(-1 if i < batch_dims else int(d) for i, d in enumerate(array.shape))
        return cls(name=name, datatype=from_numpy_dtype(array.dtype), shape=shape)

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        """Return whether a concrete ``shape`` fits this spec."""
        if len(shape) != len(self.shape):
            return False
        # A plain loop over a plain zip: this is the hot path, the lengths are equal, and a
        # strict zip costs more than the rest of the check (its exhaustion test).
        for want, got in zip(self.shape, shape, strict=False):
            if want != got and want != -1:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Signature:
    """A model's inputs and outputs."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Lookups by name, derived once: validation runs on every request.
    _inputs: dict[str, TensorSpec] = field(init=False, repr=False, compare=False)
    _outputs: dict[str, TensorSpec] = field(init=False, repr=False, compare=False)
    _output_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inputs", {t.name: t for t in self.inputs})
        object.__setattr__(self, "_outputs", {t.name: t for t in self.outputs})
        object.__setattr__(self, "_output_names", tuple(self._outputs))

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"inputs": [...], "outputs": [...]}`` in metadata form."""
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Signature:
        """Build a signature from its metadata form.

        Raises:
            ValueError: The mapping is malformed.
        """
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in raw.get("inputs", ())),
            outputs=tuple(TensorSpec.from_dict(t) for t in raw.get("outputs", ())),
        )

    def input(self, name: str) -> TensorSpec | None:
        """Return the input spec called ``name``, if any."""
        return self._inputs.get(name)

    def output(self, name: str) -> TensorSpec | None:
        """Return the output spec called ``name``, if any."""
        return self._outputs.get(name)

    def output_names(self) -> tuple[str, ...]:
        """Return the output names in signature order."""
        return self._output_names


def _names(specs: Iterable[TensorSpec]) -> str:
    return ", ".join(repr(s.name) for s in specs) or "none"


def validate_inputs(signature: Signature, inputs: Sequence[Tensor]) -> None:
    """Check that ``inputs`` are exactly the signature's inputs, with matching datatypes and shapes.

    Args:
        signature: The model's signature.
        inputs: Decoded request tensors.

    Raises:
        InvalidInput: An input is unknown, missing, duplicated, of the wrong datatype or shape.
    """
    if len(inputs) == len(signature.inputs) == 1:  # the common case, checked without a set
        tensor = inputs[0]
        spec = signature._inputs.get(tensor.name)
        if (
            spec is not None
            and tensor.datatype is spec.datatype
            and spec.accepts_shape(tensor.shape)
        ):
            return
    seen: set[str] = set()
    for tensor in inputs:
        if tensor.name in seen:
            raise InvalidInput(f"input {tensor.name!r} is given more than once")
        seen.add(tensor.name)
        spec = signature.input(tensor.name)
        if spec is None:
            raise InvalidInput(
                f"unknown input {tensor.name!r}; the model expects {_names(signature.inputs)}"
            )
        if tensor.datatype is not spec.datatype:
            raise InvalidInput(
                f"input {tensor.name!r} has datatype {tensor.datatype.value}; "
                f"the model expects {spec.datatype.value}"
            )
        if not spec.accepts_shape(tensor.shape):
            raise InvalidInput(
                f"input {tensor.name!r} has shape {list(tensor.shape)}; "
                f"the model expects {list(spec.shape)} (-1 = any size)"
            )
    missing = [s for s in signature.inputs if s.name not in seen]
    if missing:
        raise InvalidInput(
            f"missing input {_names(missing)}; the model expects {_names(signature.inputs)}"
        )
