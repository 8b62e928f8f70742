"""What both prediction log readers are asked, and the tables they give back.

:mod:`.log_query` asks a reader (:class:`~._log_duckdb.ParquetReader` or
:class:`~._log_postgres.PostgresReader`) one :class:`Query` and gets :class:`Tables`, the same
``pyarrow.Table`` s whatever the backend; turning them into rows is the same for both
(:mod:`.log_query`, :mod:`._log_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from modelport.core.errors import ErrorKind

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CALLER_FAULTS",
    "Pick",
    "Query",
    "Reader",
    "Tables",
    "Window",
    "empty",
    "nothing",
    "table_types",
]

CALLER_FAULTS: Final = tuple(
    kind.value
    for kind in (
        ErrorKind.INVALID_INPUT,
        ErrorKind.PAYLOAD_TOO_LARGE,
        ErrorKind.NOT_FOUND,
        ErrorKind.UNAUTHENTICATED,
        ErrorKind.PERMISSION_DENIED,
        ErrorKind.RATE_LIMITED,
        ErrorKind.CONFLICT,
    )
)
"""Error kinds that are the caller's fault: a request that failed with one is no failure of
the variant."""

Window = tuple[datetime, datetime]
"""``[since, until)``, both aware and in UTC."""


@dataclass(frozen=True, slots=True)
class Pick:
    """An output to cut out of each record's outputs: the named one, or the first (``None``)."""

    output: str | None


@dataclass(frozen=True, slots=True)
class Query:
    """What an experiment asks of the log (the reader knows the deployment and the window)."""

    arms: list[str]
    shadows: list[str]
    value: Pick
    """The prediction: labelled rows, and the shadow's label when ``labels``."""
    labels: bool
    score: Pick | None
    feedback: pa.Table
    """``request_id`` and ``fb``, the row's position in the feedback given."""


@dataclass(frozen=True, slots=True)
class Tables:
    """What a backend read, as ``pyarrow.Table`` s (the rest is the same for both).

    - ``requests``: ``arm`` (index in ``arms``), ``latency_ms``, ``failed``, ``cpu_ms`` (null);
      one per non-shadow record of an arm.
    - ``labelled``: ``fb`` (feedback row), ``arm`` (-1: not an arm), ``answered`` (no error, an
      arm's), ``value`` (the prediction's JSON text where answered; null if it has no such
      output); one per (feedback, non-shadow record) with the same request id.
    - ``paired``: ``shadow`` (index in ``shadows``), ``answer_latency``, ``shadow_latency``,
      ``answer_label``, ``shadow_label``, ``answer_score``, ``shadow_score`` (JSON text or null);
      one per (answered record, answered shadow copy) with the same request id.
    """

    requests: pa.Table
    labelled: pa.Table
    paired: pa.Table
    failures: dict[str, int]


class Reader(Protocol):
    """One backend's answers for one deployment and window.

    Errors of the storage while it is read come out as
    :class:`~modelport.core.errors.ServiceUnavailable`.
    """

    def read(self, query: Query) -> Tables:
        """The tables of ``query``."""

    def counts(self) -> dict[str, int]:
        """Non-shadow records per variant."""

    def close(self) -> None:
        """Release the connection, if one was opened."""


def empty(**types: Any) -> pa.Table:
    """A table without rows, of these column types."""
    import pyarrow as pa

    return pa.table({name: pa.array([], kind) for name, kind in types.items()})


def table_types(what: str) -> dict[str, Any]:
    """The columns of one intermediate table (see :class:`Tables`)."""
    import pyarrow as pa

    text = pa.string()
    return {
        "requests": {
            "arm": pa.int32(),
            "latency_ms": pa.float64(),
            "failed": pa.bool_(),
            "cpu_ms": pa.float64(),
        },
        "labelled": {"fb": pa.int64(), "arm": pa.int32(), "answered": pa.bool_(), "value": text},
        "paired": {
            "shadow": pa.int32(),
            "answer_latency": pa.float64(),
            "shadow_latency": pa.float64(),
            "answer_label": text,
            "shadow_label": text,
            "answer_score": text,
            "shadow_score": text,
        },
    }[what]


def nothing() -> Tables:
    """The tables of a log with no records in the window."""
    return Tables(
        empty(**table_types("requests")),
        empty(**table_types("labelled")),
        empty(**table_types("paired")),
        {},
    )
