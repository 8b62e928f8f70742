"""The ``--output`` forms of the resource commands: a readable table, or what the API returns."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import typer

from modelport.core.errors import InvalidInput

__all__ = ["Output", "checked_output", "print_payload"]

Output = Literal["table", "json", "yaml"]


def checked_output(output: str, forms: tuple[Output, ...] = ("table", "json", "yaml")) -> Output:
    """``output`` if it is one of ``forms``.

    Raises:
        InvalidInput: It is not; the message lists the forms.
    """
    for form in forms:
        if output == form:
            return form
    raise InvalidInput(f"--output {output!r}: expected {', '.join(forms[:-1])} or {forms[-1]}")


def print_payload(payload: Any, form: Output) -> None:
    """Print ``payload`` as indented JSON or as YAML (the API's shape)."""
    if form == "json":
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    import yaml

    typer.echo(yaml.safe_dump(payload, sort_keys=False).rstrip())
