"""The forms feedback arrives in: a JSON object, JSON lines, CSV, each read into :class:`Entry`.

One feedback names the deployment, the prediction's request id and its truth::

    {"deployment": "fraud", "request_id": "7f9c...", "label": 1}
    {"deployment": "fraud", "feedback": [{"request_id": "7f9c...", "label": 1}, ...]}

in bulk as JSON lines (one such single object per line) or CSV (a header with ``request_id``
and ``label`` or ``value``, optionally ``deployment``). Every refusal names the line or item and
what was expected. :mod:`modelport.service.feedback` checks and stores what these read.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from modelport.core.errors import InvalidInput
from modelport.core.refs import validate_model_name
from modelport.experiments.feedback import Feedback

__all__ = [
    "MAX_REQUEST_ID",
    "Entry",
    "deployment_name",
    "feedback_item",
    "iter_feedback_csv",
    "iter_feedback_lines",
    "json_type",
    "parse_feedback_csv",
    "parse_feedback_json",
    "parse_feedback_lines",
]

MAX_REQUEST_ID: Final = 128
"""Longest request id (the prediction log's and the feedback table's limit)."""
_FIELDS: Final = frozenset({"request_id", "label", "value"})
_CSV_COLUMNS: Final = ("deployment", "request_id", "label", "value")
_INTEGER: Final = re.compile(r"-?(0|[1-9][0-9]*)")
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Entry:
    """One feedback as parsed: its deployment, the checked feedback, and where it was sent.

    Attributes:
        deployment: The deployment the request was made to.
        feedback: The request id and truth, checked.
        where: Where it came from, for messages (``line 3``, ``feedback item 2``).
    """

    deployment: str
    feedback: Feedback
    where: str


def feedback_item(fields: Mapping[str, Any], where: str) -> Feedback:
    """Check one feedback object: ``request_id`` and exactly one of ``label`` or ``value``.

    A label is a string, an integer or a boolean, or a non-empty list of them (one per row of
    the request); a value is a finite number, or a non-empty list of them.

    Args:
        fields: The object, without its ``deployment``.
        where: Where it was sent, for messages.

    Raises:
        InvalidInput: A field is missing, unknown or of the wrong type.
    """
    extra = [key for key in fields if key not in _FIELDS]
    if extra:
        raise InvalidInput(
            f"{where}: unknown field {extra[0]!r}; expected request_id and label or value"
        )
    rid = fields.get("request_id", _MISSING)
    if not isinstance(rid, str) or not rid:
        raise InvalidInput(
            f"{where}: request_id must be a non-empty string (the prediction's request id), "
            f"got {_shown(rid)}"
        )
    if len(rid) > MAX_REQUEST_ID:
        raise InvalidInput(
            f"{where}: request_id must be at most {MAX_REQUEST_ID} characters, got {len(rid)}"
        )
    has_label, has_value = "label" in fields, "value" in fields
    if has_label and has_value:
        raise InvalidInput(f"{where}: send label (classification) or value (regression), not both")
    if has_label:
        return Feedback(rid, "label", _label_json(fields["label"], where), None)
    if has_value:
        truth = fields["value"]
        return Feedback(
            rid, "value", _value_json(truth, where), None if isinstance(truth, list) else truth
        )
    raise InvalidInput(
        f"{where}: no label or value; send the true label (classification) or value "
        "(regression) of the request"
    )


def _label_json(label: Any, where: str) -> str:
    labels = label if isinstance(label, list) else [label]
    if not labels:
        raise InvalidInput(f"{where}: label is an empty list; send one label per row")
    for one in labels:
        if not isinstance(one, str | int) or (isinstance(one, int) and abs(one) >= 1 << 63):
            raise InvalidInput(
                f"{where}: label must be a string, an integer or a boolean (or a list of "
                f"them, one per row), got {_shown(one)}"
                + ("; send a regression's truth as value" if isinstance(one, float) else "")
            )
    return orjson.dumps(label).decode()


def _value_json(value: Any, where: str) -> str:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidInput(f"{where}: value is an empty list; send one value per row")
    for one in values:
        number = isinstance(one, int | float) and not isinstance(one, bool)
        if not number or (isinstance(one, float) and not math.isfinite(one)):
            raise InvalidInput(
                f"{where}: value must be a finite number (or a list of them, one per row), got "
                f"{_shown(one)}"
            )
        if isinstance(one, int) and abs(one) >= 1 << 63:
            raise InvalidInput(f"{where}: value {one} is too large; send it as a float")
    return orjson.dumps(value).decode()


def deployment_name(name: Any, where: str) -> str:
    """``name`` checked as a deployment name; ``where`` says where it was read, for messages.

    Raises:
        InvalidInput: It is not a string, or not a valid name.
    """
    if not isinstance(name, str):
        raise InvalidInput(f"{where}: deployment must be a string, got {_shown(name)}")
    try:
        return validate_model_name(name)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message.replace('model name', 'deployment')}") from None


def _shown(value: Any) -> str:
    """A value as a message shows it: as JSON, cut to 40 characters."""
    if value is _MISSING:
        return "nothing"
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # not JSON: sent by a Python caller
        text = repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        text = repr(value)  # orjson writes null
    return text if len(text) <= 40 else text[:37] + "..."


def json_type(value: Any) -> str:
    """What a JSON value is, in words (``a list``, ``a string``...), for messages."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


# -- the forms feedback arrives in --------------------------------------------------------------


def parse_feedback_json(body: bytes | str) -> list[Entry]:
    """Read a JSON body: one feedback, or a deployment's list of them.

    ``{"deployment": "fraud", "request_id": "...", "label": 1}`` or
    ``{"deployment": "fraud", "feedback": [{"request_id": "...", "label": 1}, ...]}``.

    Raises:
        InvalidInput: Not valid JSON, not one of the two forms, or an item is malformed (named
            by its position, from 1).
    """
    try:
        loaded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"feedback: not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise InvalidInput(
            f"feedback: expected an object, got {json_type(loaded)}: "
            '{"deployment": ..., "request_id": ..., "label" or "value": ...}, or '
            '{"deployment": ..., "feedback": [items]}'
        )
    if "deployment" not in loaded:
        raise InvalidInput("feedback: no deployment; name the deployment the requests were made to")
    name = deployment_name(loaded["deployment"], "feedback")
    if "feedback" not in loaded:
        fields = {key: value for key, value in loaded.items() if key != "deployment"}
        return [Entry(name, feedback_item(fields, "feedback"), "feedback")]
    extra = sorted(set(loaded) - {"deployment", "feedback"})
    if extra:
        raise InvalidInput(
            f"feedback: unknown field {extra[0]!r} beside a feedback list; put request_id and "
            "label or value in each item"
        )
    items = loaded["feedback"]
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            f"feedback: 'feedback' must be a non-empty list of items, got {_shown(items)}"
        )
    entries = []
    for number, item in enumerate(items, start=1):
        where = f"feedback item {number}"
        if not isinstance(item, dict):
            raise InvalidInput(
                f"{where}: expected an object with request_id and label or value, got "
                f"{json_type(item)}"
            )
        entries.append(Entry(name, feedback_item(item, where), where))
    return entries


def parse_feedback_lines(text: str | bytes, deployment: str | None = None) -> list[Entry]:
    """Read JSON lines: one feedback object a line (see :func:`iter_feedback_lines`).

    Raises:
        InvalidInput: A line is malformed (named by its number), or there is no feedback.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"feedback: not UTF-8 text ({exc})") from None
    # Lines end at "\n" only: a JSON string may hold U+2028, which str.splitlines splits on.
    entries = list(iter_feedback_lines(text.split("\n"), deployment))
    if not entries:
        raise InvalidInput("feedback: no lines; send one JSON object per line")
    return entries


def iter_feedback_lines(
    lines: Iterable[str], deployment: str | None = None, *, first_line: int = 1
) -> Iterator[Entry]:
    """Read JSON lines lazily: ``{"deployment": ..., "request_id": ..., "label" | "value": ...}``.

    Blank lines are skipped.

    Args:
        lines: The lines.
        deployment: The deployment of lines that name none; ``None``: every line must.
        first_line: The number of the first line, for messages.

    Raises:
        InvalidInput: A line is not a JSON object, names no deployment (and there is no
            default), or its feedback is malformed.
    """
    default = None if deployment is None else deployment_name(deployment, "default deployment")
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            loaded = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                f"{where}: not valid JSON ({exc}); expected one object a line, such as "
                '{"deployment": "fraud", "request_id": "...", "label": 1}'
            ) from None
        if not isinstance(loaded, dict):
            raise InvalidInput(
                f"{where}: expected an object with request_id and label or value, got "
                f"{json_type(loaded)}"
            )
        if "deployment" in loaded:
            name = deployment_name(loaded.pop("deployment"), where)
        elif default is not None:
            name = default
        else:
            raise InvalidInput(
                f"{where}: no deployment; name it in each line, or give a default deployment"
            )
        yield Entry(name, feedback_item(loaded, where), where)


def parse_feedback_csv(text: str, deployment: str | None = None) -> list[Entry]:
    """Read CSV feedback (see :func:`iter_feedback_csv`).

    Raises:
        InvalidInput: The header or a row is malformed (named by its line), or there are no
            rows.
    """
    entries = list(iter_feedback_csv(io.StringIO(text, newline=""), deployment))
    if not entries:
        raise InvalidInput("feedback: the CSV has a header but no rows")
    return entries


def iter_feedback_csv(lines: Iterable[str], deployment: str | None = None) -> Iterator[Entry]:
    """Read CSV feedback lazily: a header with ``request_id`` and ``label`` or ``value``.

    An optional ``deployment`` column names each row's deployment (an empty cell: the default).
    A label cell that is an integer (``0``, ``-3``) is an integer label, one that starts with
    ``[`` a JSON list (one label per row of the request), anything else a string. A value cell
    is a number, or a JSON list of numbers.

    Args:
        lines: The file's lines (with their line ends, as a file yields them).
        deployment: The deployment of rows that name none.

    Raises:
        InvalidInput: The header lacks a column or has an unknown one, a row has the wrong
            number of fields, a cell is empty or not of its column's type, or a row names no
            deployment and there is no default.
    """
    default = None if deployment is None else deployment_name(deployment, "default deployment")
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput(
                "line 1: the CSV is empty; expected a header with request_id and label or value"
            )
        columns = _csv_header(header, default is not None)
        kind = "label" if "label" in columns else "value"
        width = len(header)
        for row in reader:
            where = f"line {reader.line_num}"
            if not row:
                continue
            if len(row) != width:
                raise InvalidInput(
                    f"{where}: {len(row)} field(s), expected {width} ({', '.join(header)})"
                )
            name = default
            if "deployment" in columns and row[columns["deployment"]].strip():
                name = deployment_name(row[columns["deployment"]].strip(), where)
            if name is None:
                raise InvalidInput(f"{where}: no deployment; fill the deployment column")
            cell = row[columns[kind]].strip()
            truth = _csv_label(cell, where) if kind == "label" else _csv_value(cell, where)
            fields = {"request_id": row[columns["request_id"]].strip(), kind: truth}
            yield Entry(name, feedback_item(fields, where), where)
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _csv_header(header: list[str], has_default: bool) -> dict[str, int]:
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    columns: dict[str, int] = {}
    for position, name in enumerate(names):
        if name not in _CSV_COLUMNS:
            raise InvalidInput(
                f"line 1: unknown column {name!r}; expected request_id, label or value, and "
                "optionally deployment"
            )
        if name in columns:
            raise InvalidInput(f"line 1: column {name!r} appears twice")
        columns[name] = position
    if "request_id" not in columns:
        raise InvalidInput("line 1: no request_id column; the header needs request_id")
    if ("label" in columns) == ("value" in columns):
        raise InvalidInput(
            "line 1: the header needs one of label (classification) or value (regression)"
            + (", not both" if "label" in columns else "")
        )
    if "deployment" not in columns and not has_default:
        raise InvalidInput(
            "line 1: no deployment column and no default deployment; add a deployment column "
            "or name the deployment"
        )
    return columns


def _csv_label(cell: str, where: str) -> Any:
    if not cell:
        raise InvalidInput(f"{where}: the label is empty")
    if cell.startswith("["):
        return _csv_json(cell, where, "label")
    return int(cell) if _INTEGER.fullmatch(cell) else cell


def _csv_value(cell: str, where: str) -> Any:
    if not cell:
        raise InvalidInput(f"{where}: the value is empty")
    if cell.startswith("["):
        return _csv_json(cell, where, "value")
    try:
        return float(cell)
    except ValueError:
        raise InvalidInput(f"{where}: value {cell[:40]!r} is not a number") from None


def _csv_json(cell: str, where: str, column: str) -> Any:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError:
        raise InvalidInput(
            f"{where}: the {column} {cell[:40]!r} starts with '[' but is not a JSON list"
        ) from None


# -- bulk import --------------------------------------------------------------------------------
