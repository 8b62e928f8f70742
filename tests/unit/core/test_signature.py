from __future__ import annotations

import numpy as np
import pytest

from modelport.core.datatypes import Datatype, from_numpy_dtype, parse_datatype, to_numpy_dtype
from modelport.core.errors import InvalidInput
from modelport.core.inference import Tensor
from modelport.core.signature import Signature, TensorSpec, validate_inputs

SIG = Signature(
    inputs=(TensorSpec("x", Datatype.FP32, (-1, 4)), TensorSpec("ids", Datatype.INT64, (-1,))),
    outputs=(TensorSpec("y", Datatype.FP32, (-1,)),),
)


def tensor(name: str, datatype: Datatype, shape: tuple[int, ...]) -> Tensor:
    return Tensor(name, datatype, shape, np.zeros(shape, to_numpy_dtype(datatype)))


def test_valid_inputs_pass() -> None:
    validate_inputs(SIG, [tensor("ids", Datatype.INT64, (3,)), tensor("x", Datatype.FP32, (3, 4))])
    validate_inputs(SIG, [tensor("x", Datatype.FP32, (0, 4)), tensor("ids", Datatype.INT64, (0,))])


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([tensor("x", Datatype.FP32, (1, 4))], "missing input 'ids'"),
        ([tensor("z", Datatype.FP32, (1, 4))], "unknown input 'z'; the model expects 'x', 'ids'"),
        (
            [tensor("x", Datatype.FP64, (1, 4)), tensor("ids", Datatype.INT64, (1,))],
            "datatype FP64; the model expects FP32",
        ),
        (
            [tensor("x", Datatype.FP32, (1, 5)), tensor("ids", Datatype.INT64, (1,))],
            r"shape \[1, 5\]; the model expects \[-1, 4\]",
        ),
        ([tensor("x", Datatype.FP32, (4,)), tensor("ids", Datatype.INT64, (1,))], r"shape \[4\]"),
        ([tensor("x", Datatype.FP32, (1, 4))] * 2, "more than once"),
    ],
)
def test_invalid_inputs_are_named(inputs: list[Tensor], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        validate_inputs(SIG, inputs)


def test_signature_round_trips_through_dict() -> None:
    assert Signature.from_dict(SIG.to_dict()) == SIG


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "x", "datatype": "FP32"},
        {"name": "", "datatype": "FP32", "shape": [1]},
        {"name": "x", "datatype": "F32", "shape": [1]},
        {"name": "x", "datatype": "FP32", "shape": [-2]},
    ],
)
def test_bad_spec_dicts(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TensorSpec.from_dict(raw)


def test_from_array_makes_batch_variable() -> None:
    assert TensorSpec.from_array("a", np.zeros((2, 3), np.float16)) == TensorSpec(
        "a", Datatype.FP16, (-1, 3)
    )


@pytest.mark.parametrize("datatype", list(Datatype))
def test_datatype_numpy_mapping(datatype: Datatype) -> None:
    assert parse_datatype(datatype.value) is datatype
    if datatype is not Datatype.BF16:  # BF16 is held as uint16 bit patterns
        assert from_numpy_dtype(to_numpy_dtype(datatype)) is datatype


def test_unknown_datatypes() -> None:
    with pytest.raises(ValueError, match="expected one of BOOL"):
        parse_datatype("FLOAT")
    with pytest.raises(ValueError, match="no Open Inference Protocol datatype"):
        from_numpy_dtype(np.dtype(np.complex64))
