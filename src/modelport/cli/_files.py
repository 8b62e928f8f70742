"""Checks on files named on the command line: a missing file is *not found* (exit 3)."""

from __future__ import annotations

from pathlib import Path
from typing import overload

from modelport.core.errors import ConfigError, NotFound

__all__ = ["existing_file"]


@overload
def existing_file(path: Path | str, option: str) -> Path: ...


@overload
def existing_file(path: None, option: str) -> None: ...


def existing_file(path: Path | str | None, option: str) -> Path | None:
    """Return ``path`` if it names an existing file (``None`` passes through).

    Typer's own ``exists=True`` would exit with 2, the code for a bad argument; the README's
    exit codes say a missing file is not found (3), so options check their files here.

    Args:
        path: The file given, or ``None`` when the option was not.
        option: The option or argument, for the message (``--sample``).

    Raises:
        NotFound: Nothing exists at ``path``.
        ConfigError: Something other than a file (a folder) is there.
    """
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise NotFound(f"{option} {str(path)!r}: no such file")
    if not path.is_file():
        raise ConfigError(f"{option} {str(path)!r} is not a file")
    return path
