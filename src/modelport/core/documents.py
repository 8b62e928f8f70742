"""Resource documents: YAML (several per file, ``---`` between them) or JSON, to plain mappings.

``modelport apply -f FILE`` and the control plane's ``PUT``/``POST`` read resources through
:func:`load_documents`; each mapping is then validated by its kind (``parse_deployment``...).
YAML is read with PyYAML's safe loader (plain data, no Python objects) and without aliases
(``*name``), which no resource needs and which let a few bytes expand into a huge document; a
syntax error is reported with its line and column.
"""

from __future__ import annotations

import functools
from typing import Any

from modelport.core.errors import InvalidInput

__all__ = ["Document", "load_documents"]

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
