"""Tensor values in JSON form <-> numpy arrays.

Decoding checks that JSON ``data`` fits the tensor: nested exactly as the shape or flat, with as
many elements as the shape needs, and values of the right kind (BOOL takes ``true``/``false`` only,
integer types take integers within range, FP types take numbers, BYTES takes strings). Numeric data
goes through one ``np.asarray`` pass whose inferred dtype tells whether the values are all
booleans, integers or numbers, and, for a narrower target type, one sum of squares that proves
them in range. Flat data of FP32, FP64 or an integer type (the form most clients send) takes one
``array.array`` pass instead, which converts and range-checks in C. Only when a fast path cannot
vouch for the data does a per-element walk run, and that walk is also what writes the error
message.

Encoding normalises whatever a model returned (any numeric dtype, ``str`` or ``bytes`` elements)
to the datatype's numpy dtype, then offers it as flat JSON data; an array that already has the
dtype and shape, C-ordered, is used as it is.
"""

from __future__ import annotations

import array
import itertools
import math
from typing import Any, Final, NamedTuple

import numpy as np

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.errors import InvalidInput
from modelport.protocol.header import json_summary

__all__ = [
    "array_from_json",
    "numeric_from_json_fast",
    "coerce_array",
    "flatten",
    "float_to_bf16_bits",
    "json_data",
    "object_array",
]

# Enum members the hot paths compare against (bench/HOT_PATH.md, "Enum members as module
# constants").
_BOOL: Final = Datatype.BOOL
_BF16: Final = Datatype.BF16
_BYTES: Final = Datatype.BYTES

_INT_RANGES: Final[dict[Datatype, tuple[int, int]]] = {
    Datatype.UINT8: (0, 2**8 - 1),
    Datatype.UINT16: (0, 2**16 - 1),
    Datatype.UINT32: (0, 2**32 - 1),
    Datatype.UINT64: (0, 2**64 - 1),
    Datatype.INT8: (-(2**7), 2**7 - 1),
    Datatype.INT16: (-(2**15), 2**15 - 1),
    Datatype.INT32: (-(2**31), 2**31 - 1),
    Datatype.INT64: (-(2**63), 2**63 - 1),
}
_FLOAT_MAX: Final[dict[Datatype, float]] = {
    Datatype.FP16: float(np.finfo(np.float16).max),
    Datatype.FP32: float(np.finfo(np.float32).max),
    Datatype.FP64: float(np.finfo(np.float64).max),
}
_FLOATS: Final = frozenset({Datatype.FP16, Datatype.FP32, Datatype.FP64})


class _Plan(NamedTuple):
    """How the fast path decodes the JSON data of one numeric datatype."""

    dtype: np.dtype[Any]
    kinds: str
    """The dtype kinds of ``np.asarray(data)`` that the fast path can take on."""
    bounds: tuple[int, int] | None
    """The range of an integer datatype."""
    float_limit: float | None
    """FP16 and FP32: a sum of squares of float values below this puts them all in range."""
    int_limit: float | None
    """The same for integer values, where the cast can overflow: FP16, and INT8 to INT32 (the
    square of ``2**(bits - 1)``, so that ``-2**(bits - 1)`` itself takes the checked path).
    Unsigned types check integers with min and max instead; the others need no check."""


def _plan(datatype: Datatype) -> _Plan:
    dtype = to_numpy_dtype(datatype)
    if datatype is Datatype.BOOL:
        return _Plan(dtype, "b", None, None, None)
    bounds = _INT_RANGES.get(datatype)
    if bounds is not None:
        low = bounds[0]
        narrow_signed = low < 0 and dtype.itemsize < 8
        return _Plan(dtype, "iu", bounds, None, float(low * low) if narrow_signed else None)
    if datatype is Datatype.FP64:
        return _Plan(dtype, "iuf", None, None, None)
    squared_max = _FLOAT_MAX[datatype] ** 2
    # Every int64 or uint64 value is far inside FP32's range; only FP16 checks integers.
    return _Plan(dtype, "iuf", None, squared_max, squared_max if dtype.itemsize == 2 else None)


_PLANS: Final[dict[Datatype, _Plan]] = {
    dt: _plan(dt) for dt in Datatype if dt not in (_BF16, _BYTES)
}
_NUMPY_DTYPES: Final = {dt: to_numpy_dtype(dt) for dt in Datatype}


def _typecode(dtype: np.dtype[Any]) -> str | None:
    """The ``array`` module's typecode that stores ``dtype``'s values, if there is one."""
    if dtype.kind == "f":
        candidates = "fd"
    elif dtype.kind in "iu":
        candidates = "bhilq" if dtype.kind == "i" else "BHILQ"
    else:
        return None
    for code in candidates:
        if array.array(code).itemsize == dtype.itemsize:
            return code
    return None


_FLAT_CODES: Final[dict[Datatype, tuple[str, np.dtype[Any]]]] = {
    dt: (code, _NUMPY_DTYPES[dt])
    for dt in Datatype
    if dt not in (_BF16, _BYTES, _BOOL) and (code := _typecode(_NUMPY_DTYPES[dt])) is not None
}
"""Datatypes whose flat JSON data ``array.array`` converts in one C pass: FP32, FP64 and the
integer types (FP16 has no typecode)."""


def array_from_json(
    data: Any, datatype: Datatype, shape: tuple[int, ...], what: str, *, may_hold_bools: bool = True
) -> np.ndarray:
    """Decode a tensor's JSON ``data`` into an array of its datatype, shaped as ``shape``.

    JSON ``null`` is read as NaN for FP types, so that responses whose NaN or infinite values
    were written as ``null`` decode again.

    Args:
        data: The parsed JSON value of ``data``.
        datatype: The tensor's datatype.
        shape: The tensor's shape.
        what: How messages name the tensor (``"input 'x'"``).
        may_hold_bools: ``False`` when the JSON text is known to contain no ``true``/``false``
            literal, which lets numeric data skip the check for booleans mixed into numbers.

    Returns:
        The values, dtype ``to_numpy_dtype(datatype)`` (BYTES: ``object`` array of ``bytes``).

    Raises:
        InvalidInput: The data does not fit the shape or the datatype, or the datatype is BF16.
    """
    if datatype is _BF16:
        raise InvalidInput(
            f"{what}: BF16 is only supported in binary form; "
            "send the values with parameters.binary_data_size instead of 'data'"
        )
    if datatype is _BYTES:
        return _bytes_from_json(data, shape, what)
    fast = numeric_from_json_fast(data, datatype, shape, may_hold_bools)
    if fast is not None:
        return fast
    return _numeric_checked(data, datatype, shape, what)


def _contains_bool(data: Any, ndim: int) -> bool:
    # The fast path has already proved ``data`` rectangular with ``ndim`` levels of lists, so
    # chaining ndim-1 times reaches the leaves; map/set keep the per-element work in C.
    if ndim == 0:
        return type(data) is bool
    leaves: Any = data
    for _ in range(ndim - 1):
        leaves = itertools.chain.from_iterable(leaves)
    return bool in set(map(type, leaves))


def numeric_from_json_fast(
    data: Any, datatype: Datatype, shape: tuple[int, ...], may_hold_bools: bool
) -> np.ndarray | None:
    """:func:`array_from_json`'s fast path alone, for a numeric or BOOL datatype.

    Returns:
        The array :func:`array_from_json` would return, or ``None`` when only its element by
        element path can decide (odd nesting, mixed types, values out of range, BYTES, BF16...).
    """
    if type(data) is list and data and type(data[0]) is not list:
        flat = _FLAT_CODES.get(datatype)
        if flat is not None:
            return _from_flat_list(data, flat, shape, may_hold_bools)
    plan = _PLANS.get(datatype)
    if plan is None:
        return None
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None
    depth = len(shape)  # how deeply ``data`` nests
    if values.shape != shape:
        if values.ndim != 1 or values.size != math.prod(shape):
            return None
        depth = 1
        values = values.reshape(shape)
    target, kinds, bounds, float_limit, int_limit = plan
    if values.size == 0:
        return np.empty(shape, dtype=target)
    kind = values.dtype.kind
    if kind not in kinds:
        return None
    if kinds == "b":
        return values  # only true/false make a bool array
    if may_hold_bools and _contains_bool(data, depth):
        return None
    if values.dtype is target:
        # FP64 floats and INT64 integers, what JSON numbers become. JSON numbers are finite:
        # orjson refuses NaN, Infinity and numbers that overflow a double.
        return values
    limit = float_limit if kind == "f" else int_limit
    if limit is not None:
        # A cast to a narrower type turns values beyond its range into infinities (with a
        # warning) or wraps them. One sum of squares (BLAS, which raises no warning) proves them
        # all in range, cheaper than min and max, or than an errstate block and isfinite: each
        # term is at most the sum and rounding is monotonic, so a sum below the square of a
        # bound puts every |value| below the bound. A larger sum, NaN or infinity proves
        # nothing either way, and the checked path decides.
        wide = values if kind == "f" else values.astype(np.float64)
        if not np.vdot(wide, wide) < limit:
            return None
    elif bounds is not None:
        low, high = bounds
        if int(values.min()) < low or int(values.max()) > high:
            return None
    return values.astype(target)


def _from_flat_list(
    data: list[Any],
    flat: tuple[str, np.dtype[Any]],
    shape: tuple[int, ...],
    may_hold_bools: bool,
) -> np.ndarray | None:
    """The fast path for flat data of FP32, FP64 or an integer type: one ``array.array`` pass.

    ``array.array`` takes numbers only (a string, ``null`` or a list raises ``TypeError``),
    checks integers against the type's range (``OverflowError``) and converts each value as the
    checked path does (an ``int`` for FP32 through a double). It takes ``true`` and ``false`` as
    numbers, so a body that may hold them checks for booleans; and an FP32 value beyond
    float32's range becomes infinity, which one sum (a double, so finite values cannot
    overflow it) finds, as JSON has no infinities of its own.
    """
    code, dtype = flat
    try:
        values = array.array(code, data)
    except (TypeError, OverflowError):
        return None
    if len(values) != math.prod(shape):
        return None
    if code == "f" and not math.isfinite(sum(values)):
        return None
    if may_hold_bools and _contains_bool(data, 1):
        return None
    # The array over the values' buffer, made in its shape at once (frombuffer and reshape make
    # two arrays); the count was checked above.
    return np.ndarray(shape, dtype, values)


def flatten(data: Any, shape: tuple[int, ...], what: str) -> list[Any]:
    """Return the leaves of JSON ``data`` in row-major order after checking it against ``shape``.

    ``data`` may be nested exactly as ``shape`` or be one flat list of ``prod(shape)`` values; a
    scalar tensor (shape ``[]``) may also be given as a bare value.

    Raises:
        InvalidInput: The nesting or element count does not match ``shape``.
    """
    count = math.prod(shape)
    if not isinstance(data, list):
        if not shape:
            return [data]
        raise InvalidInput(
            f"{what}: 'data' must be a list (flat or nested as shape {list(shape)}), "
            f"got {json_summary(data)}"
        )
    if len(shape) < 2 or not data or not isinstance(data[0], list):
        if len(data) != count:
            raise InvalidInput(
                f"{what}: shape {list(shape)} needs {count} elements but data has {len(data)}"
            )
        return data
    leaves: list[Any] = []
    _collect(data, shape, 0, "data", leaves, what)
    return leaves


def _collect(
    node: Any, shape: tuple[int, ...], depth: int, path: str, leaves: list[Any], what: str
) -> None:
    expected = shape[depth]
    if not isinstance(node, list):
        raise InvalidInput(
            f"{what}: {path} is {json_summary(node)} but shape {list(shape)} needs a list of "
            f"{expected} there; send data flat or nested exactly as the shape"
        )
    if len(node) != expected:
        raise InvalidInput(
            f"{what}: {path} has {len(node)} items but shape {list(shape)} needs {expected} "
            "there; send data flat or nested exactly as the shape"
        )
    if depth == len(shape) - 1:
        leaves.extend(node)  # lists among the leaves fail the element check that follows
        return
    for index, child in enumerate(node):
        _collect(child, shape, depth + 1, f"{path}[{index}]", leaves, what)


def _element_error(what: str, index: int, value: object, expected: str) -> InvalidInput:
    return InvalidInput(f"{what}: element {index} of data is {json_summary(value)}; {expected}")


def _numeric_checked(
    data: Any, datatype: Datatype, shape: tuple[int, ...], what: str
) -> np.ndarray:
    """Decode numeric data element by element; slow, but it names the first bad element."""
    values = flatten(data, shape, what)
    target = to_numpy_dtype(datatype)
    if datatype is _BOOL:
        for index, value in enumerate(values):
            if type(value) is not bool:
                raise _element_error(what, index, value, "BOOL expects true or false")
        return np.array(values, dtype=target).reshape(shape)
    if datatype in _FLOATS:
        numbers: list[Any] = []
        for index, value in enumerate(values):
            if value is None:
                numbers.append(math.nan)
            elif type(value) is int or type(value) is float:
                numbers.append(value)
            else:
                raise _element_error(what, index, value, f"{datatype} expects numbers")
        with np.errstate(over="ignore"):
            out = np.array(numbers, dtype=np.float64).astype(target)
        finite = np.isfinite(out) | np.isnan(np.asarray(numbers, dtype=np.float64))
        if not finite.all():
            index = int(np.flatnonzero(~finite)[0])
            raise _element_error(
                what,
                index,
                numbers[index],
                f"that is out of range for {datatype} "
                f"(largest finite value {_FLOAT_MAX[datatype]})",
            )
        return out.reshape(shape)
    low, high = _INT_RANGES[datatype]
    for index, value in enumerate(values):
        if type(value) is not int:
            hint = " (true/false are only valid for BOOL)" if type(value) is bool else ""
            raise _element_error(what, index, value, f"{datatype} expects integers{hint}")
        if not low <= value <= high:
            raise _element_error(
                what, index, value, f"that is out of range for {datatype}; expected [{low}, {high}]"
            )
    return np.array(values, dtype=target).reshape(shape)


def _bytes_from_json(data: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    values = flatten(data, shape, what)
    try:
        # Of the types JSON yields, only str has .encode, so success proves every value a string.
        encoded = [value.encode("utf-8") for value in values]
    except (AttributeError, UnicodeEncodeError):
        for index, value in enumerate(values):
            if type(value) is not str:
                raise _element_error(what, index, value, "BYTES expects strings") from None
        raise InvalidInput(f"{what}: data holds a string that cannot be encoded as UTF-8") from None
    return object_array(encoded, shape)


def object_array(items: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Return an ``object`` array holding ``items`` in row-major order, shaped as ``shape``."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(shape)


def float_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Round floating-point ``values`` to bfloat16 (nearest, ties to even) as ``uint16`` bits."""
    with np.errstate(over="ignore", invalid="ignore"):
        bits = np.ascontiguousarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def coerce_array(data: Any, datatype: Datatype, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Return ``data`` as a C-contiguous array of the datatype's dtype, shaped as ``shape``.

    Numeric data of any dtype is cast (``unsafe`` casting, as ``astype`` does). BYTES data may
    hold ``bytes`` or ``str`` (encoded as UTF-8). BF16 data is taken as raw bits when it has a
    2-byte non-float dtype (``uint16``, ``ml_dtypes.bfloat16``) and rounded when it is floating.
    A plain ``ndarray`` that already has the dtype and the shape, C-ordered, is returned as it is
    (not copied), so callers must not write to the result.

    Raises:
        InvalidInput: The element count differs from ``prod(shape)``, or the values cannot be
            held by the datatype.
    """
    if type(data) is np.ndarray:
        # The common case, a model's output that is already right, comes back as it is (numpy's
        # dtypes for the built-in types are singletons, so ``is`` finds every ordinary match).
        if data.dtype is _NUMPY_DTYPES[datatype] and datatype is not _BYTES:
            if data.shape == shape and data.flags.c_contiguous:
                return data
        array = data
    elif isinstance(data, np.ndarray):
        array = data
    else:
        # A list of bytes would become a fixed-width "S" array, which drops trailing NUL bytes.
        array = np.asarray(data, dtype=object if datatype is _BYTES else None)
    if min(shape, default=0) < 0:
        raise InvalidInput(f"{what}: shape {list(shape)} has a negative dimension; expected >= 0")
    count = math.prod(shape)
    if array.size != count:
        raise InvalidInput(
            f"{what}: shape {list(shape)} needs {count} elements but data has {array.size}"
        )
    if datatype is _BYTES:
        items = array.reshape(-1).tolist()
        for index, item in enumerate(items):
            if type(item) is bytes:
                continue
            if isinstance(item, str):
                try:
                    items[index] = item.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidInput(
                        f"{what}: BYTES element {index} is a str that cannot be encoded as UTF-8"
                    ) from None
            elif isinstance(item, bytes | bytearray | memoryview):
                items[index] = bytes(item)
            else:
                raise InvalidInput(
                    f"{what}: BYTES element {index} is a {type(item).__name__}; "
                    "expected bytes or str"
                )
        return object_array(items, shape)
    kind = array.dtype.kind
    if datatype is _BF16:
        if kind == "f":
            return float_to_bf16_bits(array).reshape(shape)
        if array.dtype.itemsize == 2 and kind in ("u", "i", "V"):
            return np.ascontiguousarray(array).view("<u2").reshape(shape)
        raise InvalidInput(
            f"{what}: BF16 data must be floats or 16-bit raw patterns, "
            f"got numpy dtype {array.dtype}"
        )
    if kind not in ("b", "i", "u", "f", "O"):
        raise InvalidInput(
            f"{what}: {datatype} data must be numeric, got numpy dtype {array.dtype}"
        )
    target = _NUMPY_DTYPES[datatype]
    try:
        if np.can_cast(array.dtype, target):
            out = array.astype(target, order="C", copy=False)  # a safe cast cannot overflow
        else:
            with np.errstate(all="ignore"):
                out = array.astype(target, order="C", copy=False)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{what}: values cannot be converted to {datatype}") from None
    return out.reshape(shape)


def json_data(array: np.ndarray, datatype: Datatype) -> np.ndarray | list[str] | None:
    """Return flat row-major JSON data for an array made by :func:`coerce_array`.

    Numeric data comes back as a 1-D array for ``orjson.OPT_SERIALIZE_NUMPY`` (NaN and infinities
    become ``null``). BYTES data comes back as a list of ``str``.

    Returns:
        The data, or ``None`` when it has no JSON form: BF16, or BYTES holding an element that is
        not valid UTF-8. Such tensors must travel in binary form.
    """
    if datatype is _BF16:
        return None
    if datatype is _BYTES:
        try:
            return [item.decode("utf-8") for item in array.reshape(-1).tolist()]
        except UnicodeDecodeError:
            return None
    if type(array) is np.ndarray:
        return array.ravel()  # a view when the array is C-contiguous, else a C-ordered copy
    return np.ascontiguousarray(array).reshape(-1)  # a plain ndarray, for orjson
