"""File arguments: a missing file is *not found* (exit 3), a folder is a bad argument (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.cli._files import existing_file
from modelport.cli.errors import EXIT_BY_KIND
from modelport.core.errors import ConfigError, NotFound


def test_an_existing_file_passes(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(b"x")
    assert existing_file(str(tmp_path / "a.npy"), "--sample") == tmp_path / "a.npy"
    assert existing_file(None, "--sample") is None


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="--sample .*missing.npy.*no such file") as caught:
        existing_file(tmp_path / "missing.npy", "--sample")
    assert EXIT_BY_KIND[caught.value.kind] == 3


def test_a_folder_is_a_bad_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file") as caught:
        existing_file(tmp_path, "--ca")
    assert EXIT_BY_KIND[caught.value.kind] == 2
