"""Reading a feature repository: the definitions its Python files and YAML documents declare.

As ``feast apply`` does, every ``*.py`` file of the folder (and its subfolders, skipping hidden
ones, ``__pycache__`` and files starting with ``_`` or ``test_``) is run and every Entity,
FeatureView and FeatureService it binds at module level is collected; ``*.yaml``/``*.yml``
files (other than ``feature_store.yaml``) hold definition documents. A file may also be given
on its own.

A :class:`~.definitions.FileSource` path that is relative (and not a URL), a view's or a push
source's batch source's, is made absolute against the folder of the file that declares it, so
the stored definition means the same data whichever process later reads it.
"""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.features.config import CONFIG_FILE
from modelport.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    PushSource,
)
from modelport.features.documents import Definition, kind_of

__all__ = ["absolute_sources", "python_definitions", "repository_files"]

_SKIPPED_DIRS = {"__pycache__", "data", "node_modules"}


def repository_files(path: Path) -> tuple[list[Path], list[Path]]:
    """The Python and YAML files of a repository folder, or the one file given.

    Raises:
        NotFound: Nothing is at ``path``.
        InvalidInput: A file that is neither Python nor YAML, or a folder with neither.
    """
    if not path.exists():
        raise NotFound(f"{str(path)!r}: no such file or folder")
    if path.is_file():
        if path.suffix == ".py":
            return [path], []
        if path.suffix in (".yaml", ".yml", ".json"):
            return [], [path]
        raise InvalidInput(f"{str(path)!r}: expected a .py, .yaml or .json file, or a folder")
    python = sorted(_walk(path, (".py",)))
    documents = sorted(p for p in _walk(path, (".yaml", ".yml")) if p.name != CONFIG_FILE)
    if not python and not documents:
        raise InvalidInput(
            f"{str(path)!r} holds no .py or .yaml files declaring feature definitions"
        )
    return python, documents


def _walk(folder: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    for entry in folder.iterdir():
        if entry.name.startswith((".", "_")) or entry.name in _SKIPPED_DIRS:
            continue
        if entry.is_dir():
            yield from _walk(entry, suffixes)
        elif entry.suffix in suffixes and not entry.name.startswith("test_"):
            yield entry


def python_definitions(files: list[Path]) -> list[Definition]:
    """Run each file and collect the definitions it binds at module level (each object once).

    Raises:
        ConfigError: A file fails to run (the message names it and the error), or two
            different objects of one kind share a name.
    """
    found: dict[tuple[str, str], Definition] = {}
    for file in files:
        try:
            namespace: dict[str, Any] = runpy.run_path(str(file), run_name="__modelport_repo__")
        except Exception as exc:  # noqa: BLE001 - the user's code: any error is a config error
            raise ConfigError(f"{file}: running it failed: {type(exc).__name__}: {exc}") from None
        for value in namespace.values():
            if not isinstance(value, Entity | FeatureView | FeatureService):
                continue
            if isinstance(value, FeatureView):
                value = absolute_sources(value, file.parent)
            key = (kind_of(value), value.name)
            if key in found and found[key] is not value and not _same(found[key], value):
                raise ConfigError(
                    f"{key[0]} {key[1]!r} is defined twice, differently (again in {file})"
                )
            found[key] = value
    return list(found.values())


def _same(a: Definition, b: Definition) -> bool:
    from modelport.features.documents import to_document

    return to_document(a) == to_document(b)


def absolute_sources(view: FeatureView, base: Path) -> FeatureView:
    """``view`` with a relative file path made absolute against ``base``.

    The path is the view's file source's, or its push source's batch source's.
    """
    source = view.source
    if isinstance(source, PushSource):
        source.batch_source = _absolute(source.batch_source, base)
    else:
        view.source = _absolute(source, base)
    return view


def _absolute(source: Any, base: Path) -> Any:
    if not isinstance(source, FileSource) or "://" in source.path:
        return source
    if Path(source.path).expanduser().is_absolute():
        return source
    return FileSource(
        path=str((base / source.path).resolve()),
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        file_format=source.file_format,
        name=source.name,
        description=source.description,
    )
