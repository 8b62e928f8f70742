"""Python source that makes ``opentelemetry`` impossible to import, as if the extra were absent.

Prepended to a ``python -c`` program, it stands in for an installation without
``modelport[tracing]``: every ``import opentelemetry...`` raises ``ModuleNotFoundError``.
"""

from __future__ import annotations

BLOCK_OPENTELEMETRY = """
import importlib.abc
import sys


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Block())
"""
