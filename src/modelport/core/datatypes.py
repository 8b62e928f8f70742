"""Open Inference Protocol datatypes and their numpy counterparts.

BYTES tensors are numpy ``object`` arrays whose elements are ``bytes``. BF16 has no numpy dtype: it
travels only in binary form and is held as the raw 16-bit patterns in a ``uint16`` array.
"""

from __future__ import annotations

import enum
from typing import Final

import numpy as np

__all__ = [
    "Datatype",
    "element_size",
    "from_numpy_dtype",
    "parse_datatype",
    "to_numpy_dtype",
]


class Datatype(enum.StrEnum):
    """The tensor datatypes of the Open Inference Protocol."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BF16 = "BF16"
    BYTES = "BYTES"


_TO_NUMPY: Final[dict[Datatype, np.dtype[np.generic]]] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype("<u1"),
    Datatype.UINT16: np.dtype("<u2"),
    Datatype.UINT32: np.dtype("<u4"),
    Datatype.UINT64: np.dtype("<u8"),
    Datatype.INT8: np.dtype("<i1"),
    Datatype.INT16: np.dtype("<i2"),
    Datatype.INT32: np.dtype("<i4"),
    Datatype.INT64: np.dtype("<i8"),
    Datatype.FP16: np.dtype("<f2"),
    Datatype.FP32: np.dtype("<f4"),
    Datatype.FP64: np.dtype("<f8"),
    Datatype.BF16: np.dtype("<u2"),
    Datatype.BYTES: np.dtype(object),
}

_FROM_KIND_SIZE: Final[dict[tuple[str, int], Datatype]] = {
    ("b", 1): Datatype.BOOL,
    ("u", 1): Datatype.UINT8,
    ("u", 2): Datatype.UINT16,
    ("u", 4): Datatype.UINT32,
    ("u", 8): Datatype.UINT64,
    ("i", 1): Datatype.INT8,
    ("i", 2): Datatype.INT16,
    ("i", 4): Datatype.INT32,
    ("i", 8): Datatype.INT64,
    ("f", 2): Datatype.FP16,
    ("f", 4): Datatype.FP32,
    ("f", 8): Datatype.FP64,
}

_NAMES: Final[str] = ", ".join(d.value for d in Datatype)


def parse_datatype(value: object) -> Datatype:
    """Return the :class:`Datatype` named by ``value``.

    Args:
        value: A datatype name such as ``"FP32"``.

    Returns:
        The matching datatype.

    Raises:
        ValueError: ``value`` names no datatype; the message lists the valid names.
    """
    if isinstance(value, str) and value in Datatype.__members__:
        return Datatype[value]
    raise ValueError(f"unknown datatype {value!r}; expected one of {_NAMES}")


def to_numpy_dtype(datatype: Datatype) -> np.dtype[np.generic]:
    """Return the numpy dtype holding ``datatype`` (``object`` for BYTES, ``uint16`` for BF16)."""
    return _TO_NUMPY[datatype]


def from_numpy_dtype(dtype: np.dtype[np.generic]) -> Datatype:
    """Return the datatype for a numpy dtype; strings, bytes and objects map to BYTES.

    Raises:
        ValueError: The dtype has no protocol counterpart (complex numbers, datetimes).
    """
    if dtype.kind in ("O", "S", "U"):
        return Datatype.BYTES
    found = _FROM_KIND_SIZE.get((dtype.kind, dtype.itemsize))
    if found is None:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")
    return found


def element_size(datatype: Datatype) -> int | None:
    """Return the size in bytes of one element, or ``None`` for BYTES (variable length)."""
    if datatype is Datatype.BYTES:
        return None
    return _TO_NUMPY[datatype].itemsize
