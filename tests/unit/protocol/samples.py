"""Known values for every datatype, shared by the protocol tests."""

from __future__ import annotations

import numpy as np

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.inference import Tensor

# Shape (2, 3) for every datatype, with the extremes of each type and, for BYTES, an empty
# element, non-ASCII text and a NUL byte.
_VALUES: dict[Datatype, list[object]] = {
    Datatype.BOOL: [True, False, True, False, False, True],
    Datatype.UINT8: [0, 1, 2, 127, 128, 255],
    Datatype.UINT16: [0, 1, 300, 32768, 65534, 65535],
    Datatype.UINT32: [0, 1, 70000, 2**31, 2**32 - 2, 2**32 - 1],
    Datatype.UINT64: [0, 1, 2**32, 2**53 + 1, 2**63, 2**64 - 1],
    Datatype.INT8: [-128, -1, 0, 1, 100, 127],
    Datatype.INT16: [-32768, -1, 0, 1, 1000, 32767],
    Datatype.INT32: [-(2**31), -1, 0, 1, 123456, 2**31 - 1],
    Datatype.INT64: [-(2**63), -(2**53) - 1, 0, 1, 2**53 + 1, 2**63 - 1],
    Datatype.FP16: [0.5, -1.25, 65504.0, 6e-08, -0.0, 3.140625],
    Datatype.FP32: [1.5, -2.25, 3.4028235e38, 0.1, 1e-45, -0.0],
    Datatype.FP64: [0.1, -1e300, 5e-324, 1.7976931348623157e308, 2.0 / 3.0, -0.0],
    # BF16 travels as raw bits: 1.0, -2.0, +inf, 0.0, ~0.1, -inf
    Datatype.BF16: [0x3F80, 0xC000, 0x7F80, 0x0000, 0x3DCD, 0xFF80],
    Datatype.BYTES: [
        b"",
        b"abc",
        "h\u00e9llo".encode(),
        "\u65e5\u672c".encode(),
        b"a\x00b",
        b"\xf0\x9f\x99\x82",
    ],
}

ALL_DATATYPES = list(Datatype)
JSON_DATATYPES = [dt for dt in Datatype if dt is not Datatype.BF16]


def sample(datatype: Datatype, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """Return the sample values of ``datatype`` (6 elements) reshaped, or an empty array."""
    values = _VALUES[datatype]
    count = int(np.prod(shape))
    if datatype is Datatype.BYTES:
        out = np.empty(count, dtype=object)
        out[:] = [values[i % len(values)] for i in range(count)]
        return out.reshape(shape)
    return np.array(
        [values[i % len(values)] for i in range(count)], dtype=to_numpy_dtype(datatype)
    ).reshape(shape)


def tensor(name: str, datatype: Datatype, shape: tuple[int, ...] = (2, 3)) -> Tensor:
    return Tensor(name, datatype, shape, sample(datatype, shape))


def assert_same(actual: np.ndarray, expected: np.ndarray, datatype: Datatype) -> None:
    """Exact comparison: dtype, shape, values (NaN equal to NaN; BYTES elements are bytes)."""
    assert actual.dtype == to_numpy_dtype(datatype), (actual.dtype, datatype)
    assert actual.shape == expected.shape
    if datatype is Datatype.BYTES:
        assert all(type(v) is bytes for v in actual.reshape(-1).tolist())
        assert actual.reshape(-1).tolist() == expected.reshape(-1).tolist()
    elif actual.dtype.kind == "f":
        np.testing.assert_array_equal(actual, expected)
        # -0.0 versus 0.0 matters to a bit-exact codec
        assert np.array_equal(np.signbit(actual), np.signbit(expected))
    else:
        np.testing.assert_array_equal(actual, expected)
