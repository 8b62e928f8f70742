"""Tensor values in binary form <-> numpy arrays, and the framing of BYTES elements.

The binary tensor extension lays values out little-endian without padding, one byte per BOOL
element and, for BYTES, each element as a 4-byte little-endian length followed by its bytes. The
same layout fills gRPC's ``raw_input_contents``/``raw_output_contents``. Fixed-size tensors are
decoded without copying: the array is a read-only ``numpy.frombuffer`` view of the body.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final

import numpy as np

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.errors import InvalidInput
from modelport.protocol.tensor_data import object_array

__all__ = [
    "array_from_buffer",
    "array_to_buffer",
    "pack_bytes",
    "resolve_shape",
    "unpack_bytes",
]

_LENGTH: Final = struct.Struct("<I")
_MAX_ELEMENT: Final = 0xFFFFFFFF
# Enum members as module constants (bench/HOT_PATH.md).
_BOOL: Final = Datatype.BOOL
_BYTES: Final = Datatype.BYTES
_NUMPY_DTYPES: Final = {datatype: to_numpy_dtype(datatype) for datatype in Datatype}


def pack_bytes(items: Sequence[bytes], what: str) -> bytes:
    """Frame BYTES elements: each as a 4-byte little-endian length, then its bytes.

    Args:
        items: The elements, row-major.
        what: How messages name the tensor.

    Returns:
        The framed elements, concatenated.

    Raises:
        InvalidInput: An element is longer than a 4-byte length can say (4 GiB).
    """
    pack = _LENGTH.pack
    try:
        return b"".join([pack(len(item)) + item for item in items])
    except struct.error:
        raise InvalidInput(
            f"{what}: a BYTES element is over {_MAX_ELEMENT} bytes; expected less"
        ) from None


def unpack_bytes(
    buffer: bytes, offset: int, size: int, what: str, limit: int | None = None
) -> list[bytes]:
    """Split ``buffer[offset:offset + size]`` into framed BYTES elements.

    Args:
        buffer: The body holding the framed elements.
        offset: Where the tensor's binary data starts.
        size: Its length in bytes.
        what: How messages name the tensor.
        limit: Stop after ``limit + 1`` elements (the caller then reports too many elements).

    Returns:
        The elements as ``bytes``, in order.

    Raises:
        InvalidInput: A length prefix is cut short or claims more bytes than remain.
    """
    items: list[bytes] = []
    append = items.append
    unpack_from = _LENGTH.unpack_from
    position = offset
    end = offset + size
    last_prefix = end - _LENGTH.size
    # This loop is the cost of binary BYTES, so it keeps to local names and one bound check.
    for _ in range(size // _LENGTH.size if limit is None else limit + 1):
        if position > last_prefix:
            break
        (length,) = unpack_from(buffer, position)
        position += _LENGTH.size
        following = position + length
        if following > end:
            raise InvalidInput(
                f"{what}: BYTES element {len(items)} declares {length} bytes but only "
                f"{end - position} remain in its binary data"
            )
        append(buffer[position:following])
        position = following
    else:
        if limit is not None:
            return items  # limit + 1 elements: the caller reports the surplus
    if position != end:
        raise InvalidInput(
            f"{what}: BYTES element {len(items)} has a cut-off length prefix "
            f"({end - position} bytes left; each element needs a 4-byte length first)"
        )
    return items


def array_from_buffer(
    buffer: bytes,
    offset: int,
    size: int,
    datatype: Datatype,
    shape: tuple[int, ...],
    what: str,
) -> np.ndarray:
    """Decode one tensor's binary data.

    Args:
        buffer: The whole body.
        offset: Where the tensor's data starts in ``buffer``.
        size: Its ``binary_data_size``; the caller has checked that it fits in ``buffer``.
        datatype: The tensor's datatype.
        shape: The tensor's shape.
        what: How messages name the tensor.

    Returns:
        The values, shaped as ``shape``; fixed-size types are read-only views of ``buffer``.
        BOOL bytes other than 0 and 1 are read as true (the result is then a copy).

    Raises:
        InvalidInput: The size does not match the shape, or BYTES framing is broken or holds a
            different number of elements than the shape needs.
    """
    count = math.prod(shape)
    if datatype is _BYTES:
        items = unpack_bytes(buffer, offset, size, what, limit=count)
        if len(items) != count:
            held = f"more than {count}" if len(items) > count else str(len(items))
            raise InvalidInput(
                f"{what}: shape {list(shape)} needs {count} BYTES elements but its binary data "
                f"holds {held}"
            )
        return object_array(items, shape)
    dtype = _NUMPY_DTYPES[datatype]
    needed = count * dtype.itemsize
    if size != needed:
        raise InvalidInput(
            f"{what}: shape {list(shape)} of {datatype} needs {needed} bytes "
            f"({count} elements of {dtype.itemsize}) but binary_data_size is {size}"
        )
    if count == 0:
        return np.empty(shape, dtype=dtype)
    if datatype is _BOOL:
        raw = np.frombuffer(buffer, dtype=np.uint8, count=count, offset=offset)
        if int(raw.max()) > 1:
            normalised: np.ndarray = raw != 0
            return normalised.reshape(shape)
        return raw.view(np.bool_).reshape(shape)
    # A read-only view of the (immutable) body; one constructor call instead of frombuffer and
    # reshape. The size check above keeps it inside the buffer.
    return np.ndarray(shape, dtype, buffer, offset)


def array_to_buffer(array: np.ndarray, datatype: Datatype, what: str) -> bytes | memoryview:
    """Return the binary form of an array already holding the datatype's dtype.

    Args:
        array: Values as :func:`modelport.protocol.tensor_data.coerce_array` returns them.
        datatype: The tensor's datatype.
        what: How messages name the tensor.

    Returns:
        Raw little-endian bytes (for fixed-size types, a view of ``array`` when it is a
        C-ordered ``ndarray``) or framed BYTES elements.

    Raises:
        InvalidInput: A BYTES element is too long to frame.
    """
    if datatype is _BYTES:
        return pack_bytes(array.reshape(-1).tolist(), what)
    if type(array) is not np.ndarray or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # a plain, C-ordered ndarray, whose .data we take
    if array.size == 0:
        return b""  # memoryview.cast refuses shapes with a zero in them
    return array.data.cast("B")


def resolve_shape(spec_shape: tuple[int, ...], count: int, what: str) -> tuple[int, ...]:
    """Fill the one variable (``-1``) dimension of ``spec_shape`` so that it holds ``count``.

    Args:
        spec_shape: A signature shape; ``-1`` marks a variable dimension.
        count: How many elements the data holds.
        what: How messages name the tensor.

    Returns:
        The concrete shape.

    Raises:
        InvalidInput: More than one dimension is variable, or ``count`` does not fit.
    """
    variable = [i for i, dim in enumerate(spec_shape) if dim < 0]
    fixed = math.prod(dim for dim in spec_shape if dim >= 0)
    if not variable:
        if count != fixed:
            raise InvalidInput(
                f"{what}: shape {list(spec_shape)} needs {fixed} elements "
                f"but the body holds {count}"
            )
        return spec_shape
    if len(variable) > 1:
        raise InvalidInput(
            f"{what}: shape {list(spec_shape)} has {len(variable)} variable dimensions; a raw "
            "binary body (Inference-Header-Content-Length: 0) can fill only one, so send a JSON "
            "header with the shape instead"
        )
    if fixed == 0:
        raise InvalidInput(
            f"{what}: shape {list(spec_shape)} has a zero dimension, so the variable dimension "
            "cannot be inferred from a raw binary body; send a JSON header with the shape"
        )
    if count % fixed:
        raise InvalidInput(
            f"{what}: the body holds {count} elements, which is not a multiple of {fixed} "
            f"(the fixed dimensions of shape {list(spec_shape)})"
        )
    resolved = list(spec_shape)
    resolved[variable[0]] = count // fixed
    return tuple(resolved)
