"""Feature enrichment in the gateway: entity keys in, model inputs assembled from online features.

A deployment with ``spec.features`` (:class:`~modelport.core.deployment.FeaturesSpec`) is
served through an :class:`Enrichment`, built with its route (off the event loop), and one
:class:`Assembly` per model version it serves, built from that version's signature. A request
is then, on the event loop:

1. :meth:`Enrichment.keys`: the entity keys, read from the decoded request (an input of BYTES,
   UTF-8 text, or INT64, one key per row, shape ``[N]`` or ``[N, 1]``; or a request parameter,
   one key, a string or an integer, for every row); a missing or malformed key is a 400;
2. :meth:`Enrichment.read`: one batched ``get_online_features`` for every row and feature
   (inline on the event loop for SQLite, in a thread for Redis: :attr:`Enrichment.inline`),
   then the ``onMissing``
   policy: a value is missing when its status is not ``PRESENT`` (no row online, a null, or
   older than the view's ttl); ``reject`` answers 400 naming the feature, the entity and the
   status, ``default`` takes the declared default, ``null`` sends NaN;
3. :meth:`Assembly.call`: the model input in the order of the signature. Inputs the request
   gives itself and the signature names pass through unchanged; a signature input named like
   a feature (``spend_7d``) gets that feature's column (``[N]`` or ``[N, 1]``, as the signature
   says); the input named by ``spec.features.input``, or else the model's only input that is
   neither named like a feature nor an entity key's input, gets every other feature as one
   ``[N, F]`` matrix in declared order; each cast to the input's datatype. Entity-key inputs
   the signature does not name are not sent; other inputs are (the model refuses unknown ones
   as usual). The new request is encoded as the call came (JSON, or binary tensors), so local
   and remote backends forward it alike, and keeps the decoded request for the in-process one.

What cannot fit is refused when the route is built (:meth:`Enrichment.build`,
:meth:`Enrichment.assembly`, :class:`~modelport.core.errors.ConfigError`), so the deployment
is reported "cannot be served: ..." and never fails per request: an unknown view or feature or
service, a view keyed by a join key the document does not declare, features left over with
no input to take them, a matrix width that is not the signature's, a feature type the input's
datatype cannot hold (text into numbers, numbers into BYTES, timestamps anywhere), ``null``
for an input that is not a float, a default the input's datatype cannot hold.

The prediction log keeps, beside the model input as sent, one more BYTES input,
``modelport_features`` (:data:`LOG_INPUT`), one JSON text per row::

    {"at": "2026-12-08T03:00:00.123456+00:00", "keys": {"user_id": "u1"},
     "values": {"user_stats:spend_7d": 30.0, "user_stats:orders_7d": null}}

the instant of the online read, the row's entity keys and the values the online store gave
(``null`` for a missing one, whatever the policy served), so a skew check can recompute them
offline at that instant (:mod:`modelport.service.feature_skew`). The model never sees it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import orjson

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.deployment import Deployment, FeaturesSpec
from modelport.core.errors import (
    ConfigError,
    InvalidInput,
    ModelportError,
    NotFound,
    ServiceUnavailable,
)
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.signature import Signature, TensorSpec
from modelport.features import FeatureStore
from modelport.features.online import FeatureStatus
from modelport.features.online.sqlite import SqliteOnlineStore
from modelport.features.types import (
    Bool,
    Bytes,
    DataType,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
)
from modelport.protocol.rest import decode_infer_request, encode_infer_request

__all__ = [
    "LOG_INPUT",
    "Assembly",
    "Enriched",
    "Enrichment",
    "FeatureColumn",
    "Fetched",
    "route_enrichment",
]

LOG_INPUT: Final = "modelport_features"
"""The name of the prediction log's extra input: one JSON record of keys and values per row."""

_FLOATS: Final = frozenset({Datatype.FP16, Datatype.FP32, Datatype.FP64})
_NUMBERS: Final = frozenset(
    {
        Datatype.INT8,
        Datatype.INT16,
        Datatype.INT32,
        Datatype.INT64,
        Datatype.UINT8,
        Datatype.UINT16,
        Datatype.UINT32,
        Datatype.UINT64,
        *_FLOATS,
    }
)
_NUMERIC_FEATURES: Final = (Int32, Int64, Float32, Float64, Bool)
_KEY_TYPES: Final = (Datatype.BYTES, Datatype.INT64)
_SHOWN_MISSING: Final = 3


@dataclass(frozen=True, slots=True)
class FeatureColumn:
    """One declared feature as the gateway serves it.

    Attributes:
        ref: ``view:feature``.
        name: The feature's name (what a signature input named like it is called).
        column: Its column in the online read (``view__feature``).
        dtype: Its declared type.
        default: The value served when it is missing (``onMissing: default``), else ``None``.
    """

    ref: str
    name: str
    column: str
    dtype: DataType
    default: float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """One request's features, read once and shared by the variant and its shadows.

    Attributes:
        request: The request as it came, decoded.
        header_length: Its ``Inference-Header-Content-Length`` (``None``: it came as JSON).
        rows: Its number of rows.
        keys: Join key -> one key per row.
        values: Feature ref -> one value per row as the online store gave it (``None``:
            missing).
        served: Feature ref -> one value per row after the ``onMissing`` policy.
        at: The instant of the online read.
        binary_outputs: Ask the backend for binary outputs (a gRPC call, whose transport
            encodes its body so).
    """

    request: InferenceRequest
    header_length: int | None
    rows: int
    keys: Mapping[str, list[str | int]]
    values: Mapping[str, list[Any]]
    served: Mapping[str, list[Any]]
    at: datetime
    binary_outputs: bool = False


@dataclass(frozen=True, slots=True)
class Enriched:
    """A request with its features, encoded for the backend and for the prediction log.

    Attributes:
        request: The model input as sent.
        body: Its REST body.
        header_length: Its ``Inference-Header-Content-Length`` (``None``: all JSON).
        log_body: The body the prediction log decodes: ``request`` plus :data:`LOG_INPUT`,
            always JSON.
        log_header_length: Its header length.
    """

    request: InferenceRequest
    body: bytes
    header_length: int | None
    log_body: bytes
    log_header_length: int | None


@dataclass(frozen=True, slots=True)
class _Target:
    """A signature input assembled from features: one column, or the ``[N, F]`` matrix."""

    spec: TensorSpec
    features: tuple[FeatureColumn, ...]
    matrix: bool


class Enrichment:
    """A deployment's feature enrichment: which features, where the keys are, what if missing.

    Built by :meth:`build` when the gateway builds the deployment's route; read-only after.

    Args:
        deployment: The deployment's name (for messages).
        spec: Its ``spec.features``.
        store: The feature store serving the features online.
        features: The declared features, resolved in the store, in declared order.

    Attributes:
        inline: Whether the gateway reads inline on the event loop (an embedded SQLite
            store: 50-110 us a read, less than a hop to a worker thread adds) or in a thread
            (a store across the network, Redis, whose round trip must not hold the loop).
    """

    def __init__(
        self,
        deployment: str,
        spec: FeaturesSpec,
        store: FeatureStore,
        features: Sequence[FeatureColumn],
    ) -> None:
        self.deployment = deployment
        self.spec = spec
        self.store = store
        self.features = tuple(features)
        self.refs = [f.ref for f in self.features]
        self.key_inputs = {e.input for e in spec.entities if e.input is not None}
        self.inline = isinstance(store.online_store(), SqliteOnlineStore)

    @classmethod
    def build(cls, deployment: Deployment, store: FeatureStore | None) -> Enrichment | None:
        """The enrichment of ``deployment``; ``None`` when it declares no features.

        Blocking (it may open the online store): run off the event loop.

        Raises:
            ConfigError: The gateway has no feature store, or the features do not resolve:
                an unknown service, view or feature, a view keyed by an undeclared join key,
                or a feature missing a default.
        """
        spec = deployment.spec.features
        if spec is None:
            return None
        name = deployment.name
        unset = (
            f"deployment {name!r} declares spec.features, but this gateway has no online "
            "feature store: set features.online_store (MODELPORT_FEATURES__ONLINE_STORE)"
        )
        if store is None:
            raise ConfigError(unset)
        try:
            store.online_store()  # opened here, not by the first request
        except ConfigError:
            raise ConfigError(unset) from None
        try:
            refs = (
                store.get_feature_service(spec.service).feature_refs()
                if spec.service is not None
                else list(spec.features or ())
            )
            declared = {e.join_key for e in spec.entities}
            columns = []
            for ref in refs:
                view_name, feature = ref.split(":", 1)
                view = store.get_feature_view(view_name)
                field = view.feature(feature)
                undeclared = [k for k in view.join_keys if k not in declared]
                if undeclared:
                    raise ConfigError(
                        f"feature view {view.name!r} is keyed by {undeclared}, which "
                        "spec.features.entities does not declare"
                    )
                default = spec.default(ref)
                if spec.on_missing == "default" and default is None:
                    raise ConfigError(f"onMissing is default, but {ref!r} has no default")
                columns.append(
                    FeatureColumn(
                        ref, field.name, f"{view.name}__{field.name}", field.dtype, default
                    )
                )
            names = [c.name for c in columns]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice and spec.defaults.keys() & set(twice):
                raise ConfigError(
                    f"defaults {sorted(spec.defaults.keys() & set(twice))} name features of "
                    "more than one view: key them by 'view:feature'"
                )
        except ModelportError as exc:
            raise ConfigError(f"spec.features: {exc.message}") from None
        return cls(name, spec, store, columns)

    def assembly(self, signature: Signature | None, model: str, version: str) -> Assembly:
        """How requests to ``model@version`` are assembled, checked against its signature.

        Raises:
            ConfigError: The version has no signature, or the features do not fit it.
        """
        where = f"spec.features does not fit {model}@{version}"
        if signature is None:
            raise ConfigError(f"{where}: the version has no signature to assemble inputs by")
        by_name = {f.name: f for f in self.features}
        targets: list[_Target] = []
        taken: set[str] = set()
        for spec in signature.inputs:
            feature = by_name.get(spec.name)
            if feature is not None and sum(f.name == spec.name for f in self.features) == 1:
                _check_target(spec, (feature,), False, self.spec.on_missing, where)
                targets.append(_Target(spec, (feature,), False))
                taken.add(feature.ref)
        rest = tuple(f for f in self.features if f.ref not in taken)
        if rest:
            target = self._matrix_input(signature, {t.spec.name for t in targets}, rest, where)
            _check_target(target, rest, True, self.spec.on_missing, where)
            targets.append(_Target(target, rest, True))
        elif self.spec.input is not None and self.spec.input not in {t.spec.name for t in targets}:
            raise ConfigError(
                f"{where}: spec.features.input is {self.spec.input!r}, but every feature has "
                "an input of its own"
            )
        return Assembly(self, signature, tuple(targets))

    def _matrix_input(
        self,
        signature: Signature,
        named: set[str],
        rest: tuple[FeatureColumn, ...],
        where: str,
    ) -> TensorSpec:
        left = ", ".join(f.ref for f in rest)
        if self.spec.input is not None:
            spec = signature.input(self.spec.input)
            if spec is None or spec.name in named:
                raise ConfigError(
                    f"{where}: spec.features.input is {self.spec.input!r}, which is not an "
                    f"input of the model (its inputs: {_input_names(signature)})"
                )
            return spec
        free = [s for s in signature.inputs if s.name not in named | self.key_inputs]
        if len(free) != 1:
            raise ConfigError(
                f"{where}: features {left} need one input to take them as a matrix, and the "
                f"model has {len(free)} inputs not named like a feature or an entity key "
                f"({', '.join(s.name for s in free) or 'none'}): name one with "
                "spec.features.input"
            )
        return free[0]

    def keys(self, request: InferenceRequest) -> tuple[int, dict[str, list[str | int]]]:
        """The rows of ``request`` and each join key's value per row.

        Raises:
            InvalidInput: A key's input or parameter is missing or malformed, or the key
                inputs disagree on the number of rows.
        """
        inputs = {t.name: t for t in request.inputs}
        columns: dict[str, list[str | int]] = {}
        rows: int | None = None
        for entity in self.spec.entities:
            if entity.input is None:
                continue
            tensor = inputs.get(entity.input)
            if tensor is None:
                raise InvalidInput(
                    f"deployment {self.deployment!r} reads the join key {entity.join_key!r} "
                    f"from input {entity.input!r}: the request has no such input"
                )
            column = _key_column(tensor, entity.join_key)
            if rows is not None and len(column) != rows:
                raise InvalidInput(
                    f"input {entity.input!r} holds {len(column)} keys, but other key inputs "
                    f"hold {rows}: one key per row"
                )
            rows = len(column)
            columns[entity.join_key] = column
        if rows is None:  # every key is a parameter: as many rows as the request's inputs
            rows = (
                int(request.inputs[0].shape[0]) if request.inputs and request.inputs[0].shape else 1
            )
        for entity in self.spec.entities:
            if entity.parameter is None:
                continue
            value = request.parameters.get(entity.parameter)
            if value is None:
                raise InvalidInput(
                    f"deployment {self.deployment!r} reads the join key {entity.join_key!r} "
                    f"from parameter {entity.parameter!r}: the request has no such parameter"
                )
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidInput(
                    f"parameter {entity.parameter!r} is the join key {entity.join_key!r}: "
                    f"expected a string or an integer, got {value!r}"
                )
            columns[entity.join_key] = [value] * rows
        return rows, columns

    def decode(self, body: bytes, header_length: int | None) -> InferenceRequest:
        """The request of a REST call.

        Raises:
            InvalidInput: A raw body (header length 0), which carries no keys, or a bad body.
        """
        if header_length == 0:
            raise InvalidInput(
                f"deployment {self.deployment!r} reads entity keys from the request: send a "
                "JSON header, not one raw input (Inference-Header-Content-Length: 0)"
            )
        return decode_infer_request(body, header_length)

    def read(
        self,
        request: InferenceRequest,
        header_length: int | None,
        now: datetime | None = None,
        *,
        binary_outputs: bool = False,
    ) -> Fetched:
        """Read the features of every row of ``request`` online (blocking) and apply the policy.

        Args:
            request: The request, decoded.
            header_length: Its header length as it came (``None``: JSON), which the enriched
                body keeps.
            now: The instant of the read; by default the system clock's.
            binary_outputs: Ask the backend for binary outputs in the enriched body.

        Raises:
            InvalidInput: A key is missing or malformed, or (``onMissing: reject``) a feature
                has no value for a row: the message names the feature, the keys and why.
            ServiceUnavailable: The store no longer has a view or feature (deleted since the
                route was built).
        """
        rows, keys = self.keys(request)
        at = datetime.now(UTC) if now is None else now
        try:
            rows_by_key: dict[str, Sequence[Any]] = dict(keys)
            online = self.store.get_online_features(self.refs, rows_by_key, True, now=at)
        except NotFound as exc:
            raise ServiceUnavailable(
                f"deployment {self.deployment!r} cannot be served: {exc.message}"
            ) from None
        found = online.to_dict()
        values: dict[str, list[Any]] = {}
        served: dict[str, list[Any]] = {}
        missing: list[str] = []
        policy = self.spec.on_missing
        for feature in self.features:
            column = found[feature.column]
            statuses = online.statuses[feature.column]
            absent = [i for i, s in enumerate(statuses) if s is not FeatureStatus.PRESENT]
            if absent:
                column = [
                    None if s is not FeatureStatus.PRESENT else v
                    for v, s in zip(column, statuses, strict=True)
                ]
            values[feature.ref] = column
            if not absent:
                served[feature.ref] = column
            elif policy == "reject":
                missing += [_missing(feature, keys, i, statuses[i]) for i in absent]
            elif policy == "default":
                served[feature.ref] = [feature.default if v is None else v for v in column]
            else:
                served[feature.ref] = [math.nan if v is None else v for v in column]
        if missing:
            shown = "; ".join(missing[:_SHOWN_MISSING])
            more = len(missing) - _SHOWN_MISSING
            raise InvalidInput(
                f"deployment {self.deployment!r}: {shown}"
                + (f" (and {more} more)" if more > 0 else "")
                + "; onMissing is reject"
            )
        return Fetched(request, header_length, rows, keys, values, served, at, binary_outputs)


class Assembly:
    """How one model version's inputs are assembled from a request and its features.

    Args:
        enrichment: The deployment's enrichment.
        signature: The version's signature.
        targets: The signature inputs assembled from features.
    """

    def __init__(
        self, enrichment: Enrichment, signature: Signature, targets: tuple[_Target, ...]
    ) -> None:
        self._enrichment = enrichment
        self._signature = signature
        self._targets = targets
        self._drop = enrichment.key_inputs - {s.name for s in signature.inputs}

    def request(self, fetched: Fetched) -> InferenceRequest:
        """The model input: signature order, request inputs first where it gives them.

        Raises:
            InvalidInput: A value cannot be cast to its input's datatype.
        """
        given = {t.name: t for t in fetched.request.inputs if t.name not in self._drop}
        built = {t.spec.name: t for t in self._targets}
        inputs: list[Tensor] = []
        for spec in self._signature.inputs:
            tensor = given.pop(spec.name, None)
            if tensor is None and spec.name in built:
                tensor = _assembled(built[spec.name], fetched)
            if tensor is not None:
                inputs.append(tensor)
        inputs += given.values()  # not in the signature: the model says what it expects
        original = fetched.request
        return InferenceRequest(inputs, original.id, original.parameters, original.outputs)

    def enriched(self, fetched: Fetched) -> Enriched:
        """The model input, encoded as the request came, and the prediction log's body.

        Raises:
            InvalidInput: A value cannot be cast or encoded.
        """
        request = self.request(fetched)
        binary = fetched.header_length is not None
        body, header_length = encode_infer_request(
            request, binary_inputs=binary, binary_outputs=fetched.binary_outputs
        )
        records = [
            orjson.dumps(
                {
                    "at": fetched.at.isoformat(),
                    "keys": {k: column[i] for k, column in fetched.keys.items()},
                    "values": {ref: _json_value(v[i]) for ref, v in fetched.values.items()},
                }
            )
            for i in range(fetched.rows)
        ]
        record = Tensor(LOG_INPUT, Datatype.BYTES, (fetched.rows,), _bytes_array(records))
        logged = InferenceRequest([*request.inputs, record], request.id, request.parameters)
        # JSON whatever the call came as: the log writes binary BYTES tensors as no JSON text.
        log_body, log_header_length = encode_infer_request(logged)
        return Enriched(request, body, header_length, log_body, log_header_length)


def route_enrichment(
    deployment: Deployment,
    store: FeatureStore | None,
    signature_of: Callable[[str, str], Signature | None] | None,
    served: Mapping[str, tuple[str, str]],
) -> tuple[Enrichment | None, dict[tuple[str, str], Assembly]]:
    """A deployment's enrichment and the assembly of each version it serves (blocking).

    Args:
        deployment: The deployment.
        store: The gateway's feature store, if it has one.
        signature_of: The signature of ``(model, version)``, if the gateway can read them.
        served: Variant -> ``(model, version)`` it serves.

    Returns:
        ``(None, {})`` for a deployment without ``spec.features``.

    Raises:
        ConfigError: It declares features this gateway cannot serve (no online store, no
            signatures) or that do not resolve or fit a served version's signature.
    """
    enrichment = Enrichment.build(deployment, store)
    if enrichment is None:
        return None, {}
    if signature_of is None:
        raise ConfigError(
            f"deployment {deployment.name!r} declares spec.features, but this gateway "
            "cannot read model signatures to assemble inputs by"
        )
    assemblies = {
        (model, version): enrichment.assembly(signature_of(model, version), model, version)
        for model, version in set(served.values())
    }
    return enrichment, assemblies


def _key_column(tensor: Tensor, join_key: str) -> list[str | int]:
    what = f"input {tensor.name!r} (the join key {join_key!r})"
    if tensor.datatype not in _KEY_TYPES:
        raise InvalidInput(f"{what} is {tensor.datatype}: expected BYTES or INT64")
    shape = tuple(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise InvalidInput(f"{what} has shape {list(shape)}: expected [N] or [N, 1], one key a row")
    flat = np.asarray(tensor.data).reshape(-1)
    if tensor.datatype == Datatype.INT64:
        return [int(v) for v in flat]
    keys: list[str | int] = []
    for value in flat:
        try:
            keys.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} holds a key that is not UTF-8 text") from None
    return keys


def _missing(
    feature: FeatureColumn, keys: Mapping[str, list[str | int]], row: int, status: FeatureStatus
) -> str:
    shown = ", ".join(f"{k}={column[row]!r}" for k, column in keys.items())
    return f"feature {feature.ref!r} has no value for {shown} (row {row}: {status.value})"


def _check_target(
    spec: TensorSpec,
    features: tuple[FeatureColumn, ...],
    matrix: bool,
    policy: str,
    where: str,
) -> None:
    """Refuse a target input that cannot hold ``features`` (see the module's list)."""
    what = f"{where}: input {spec.name!r} ({spec.datatype}, shape {list(spec.shape)})"
    width = len(features)
    shape = spec.shape
    if matrix:
        fits = (len(shape) == 2 and shape[1] in (-1, width)) or (len(shape) == 1 and width == 1)
        expected = f"[N, {width}] for {', '.join(f.ref for f in features)}"
    else:
        fits = len(shape) == 1 or (len(shape) == 2 and shape[1] in (-1, 1))
        expected = "[N] or [N, 1] for one feature"
    if not fits:
        raise ConfigError(f"{what} cannot take the features: expected {expected}")
    datatype = spec.datatype
    for feature in features:
        if datatype == Datatype.BYTES:
            ok = feature.dtype in (String, Bytes)
        elif datatype == Datatype.BOOL:
            ok = feature.dtype is Bool
        else:
            ok = datatype in _NUMBERS and feature.dtype in _NUMERIC_FEATURES
        if not ok:
            raise ConfigError(f"{what} cannot hold feature {feature.ref!r} of type {feature.dtype}")
        if feature.default is not None and not _castable(feature.default, datatype):
            raise ConfigError(
                f"{what} cannot hold the default {feature.default!r} of feature {feature.ref!r}"
            )
    if policy == "null" and datatype not in _FLOATS:
        raise ConfigError(
            f"{what}: onMissing null sends NaN, which needs a float input (FP16, FP32, FP64)"
        )


def _castable(value: float | int | str | bool, datatype: Datatype) -> bool:
    if datatype == Datatype.BYTES:
        return isinstance(value, str)
    if datatype == Datatype.BOOL:
        return isinstance(value, bool)
    if isinstance(value, str):
        return False
    return datatype in _FLOATS or float(value).is_integer()


def _assembled(target: _Target, fetched: Fetched) -> Tensor:
    spec = target.spec
    rows = fetched.rows
    columns = [fetched.served[f.ref] for f in target.features]
    if spec.datatype == Datatype.BYTES:
        items = [v.encode() if isinstance(v, str) else v for column in columns for v in column]
        flat = _bytes_array(items)
        data = flat.reshape(len(columns), rows).T if target.matrix else flat
    else:
        dtype = to_numpy_dtype(spec.datatype)
        try:
            data = (
                np.array(columns, dtype=dtype).T
                if target.matrix
                else np.array(columns[0], dtype=dtype)
            )
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(
                f"the features of input {spec.name!r} are not {spec.datatype}: {exc}"
            ) from None
    shape = (rows, len(columns)) if len(spec.shape) == 2 else (rows,)
    data = np.ascontiguousarray(data.reshape(shape))
    return Tensor(spec.name, spec.datatype, shape, data)


def _bytes_array(items: Sequence[bytes]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _input_names(signature: Signature) -> str:
    return ", ".join(s.name for s in signature.inputs) or "none"
