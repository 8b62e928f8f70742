"""Resource documents: YAML (several per file, ``---`` between them) or JSON, to plain mappings.

``modelport apply -f FILE`` and the control plane's ``PUT``/``POST`` read resources through
:func:`load_documents`; each mapping is then validated by its kind (``parse_deployment``...).
YAML is read with PyYAML's safe loader (plain data, no Python objects) and without aliases
(``*name``), which no resource needs and which let a few bytes expand into a huge document; a
syntax error is reported with its line and column.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from modelport.core.errors import InvalidInput

__all__ = ["Document", "changes", "load_documents"]

Document = dict[str, Any]
"""One resource document as plain data."""


def load_documents(text: str, source: str) -> list[Document]:
    """Parse every document in ``text``; empty documents (a trailing ``---``) are skipped.

    Args:
        text: YAML or JSON (JSON is YAML).
        source: What the text came from (a file name, ``request body``), for messages.

    Raises:
        InvalidInput: The text is not YAML, a document is not a mapping, or there is no document.
    """
    import yaml

    try:
        loaded = [doc for doc in yaml.load_all(text, Loader=_loader()) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = exc.problem or str(exc)
        raise InvalidInput(f"{source}: not valid YAML at {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {exc}") from None
    if not loaded:
        raise InvalidInput(f"{source}: no document (expected at least one resource)")
    for number, doc in enumerate(loaded, start=1):
        if not isinstance(doc, dict):
            raise InvalidInput(
                f"{source}: document {number} is a {type(doc).__name__}; expected a mapping with "
                "apiVersion, kind, metadata and spec"
            )
    return loaded


def changes(before: Document | None, after: Document | None) -> list[str]:
    """What differs between two versions of a document, one line per changed leaf.

    Lines read ``path: old -> new`` with paths as in validation errors
    (``spec.variants[1].weight: 10 -> 50``); a field only in one of them shows ``(absent)`` on
    the other side; a list of mappings is compared item by item, with its length as one more
    line. ``before=None`` (created) and ``after=None`` (deleted) compare against an empty
    document.
    """
    old, new = _leaves(before or {}, ""), _leaves(after or {}, "")
    lines = []
    for path in sorted(old.keys() | new.keys()):
        was, now = old.get(path, _ABSENT), new.get(path, _ABSENT)
        if was != now:
            lines.append(f"{path}: {_show(was)} -> {_show(now)}")
    return lines


_ABSENT = object()


def _leaves(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, dict):
        leaves: dict[str, Any] = {}
        for key, item in value.items():
            leaves.update(_leaves(item, f"{path}.{key}" if path else str(key)))
        return leaves
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        leaves = {f"{path}.length": len(value)} if path else {}
        for index, item in enumerate(value):
            leaves.update(_leaves(item, f"{path}[{index}]"))
        return leaves
    return {path: value}


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


@functools.cache
def _loader() -> Any:
    """PyYAML's safe loader, refusing aliases (built on first use: PyYAML is imported late)."""
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event: Any = self.peek_event()  # type: ignore[no-untyped-call]  # untyped stub
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed here", event.start_mark
                )
            return super().compose_node(parent, index)

    return NoAliasSafeLoader
