"""Hold back what frameworks print while a command loads a model, so an error is one line.

ML frameworks write to the process's standard output and error themselves: LightGBM prints
``[LightGBM] [Fatal] ...`` before it raises, XGBoost and ONNX Runtime print warnings from native
code. A command that fails must print exactly one line, ``error: ...``, so the command holds
back everything written to file descriptors 1 and 2 (Python's prints and native writes alike)
while the model loads, and lets it through only when the work did not fail with a modelport
error: on success, and on an unexpected exception, whose traceback needs the context.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import BinaryIO

from modelport.core.errors import ModelportError

__all__ = ["held_output"]


@contextmanager
def held_output() -> Iterator[None]:
    """Capture file descriptors 1 and 2 for the block; replay them unless it raises our error.

    Raises:
        ModelportError: Whatever the block raised; what it printed is dropped.
    """
    with ExitStack() as stack:
        captures = [
            (fd, stream, stack.enter_context(tempfile.TemporaryFile()))
            for fd, stream in ((1, sys.stdout), (2, sys.stderr))
        ]
        saved: list[tuple[int, int]] = []
        for fd, stream, capture in captures:
            stream.flush()
            saved.append((fd, os.dup(fd)))
            os.dup2(capture.fileno(), fd)
        replay = True
        try:
            yield
        except ModelportError:
            replay = False
            raise
        finally:
            for _, stream, _capture in captures:
                stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            if replay:
                for fd, _stream, capture in captures:
                    _copy_to(capture, fd)


def _copy_to(capture: BinaryIO, fd: int) -> None:
    capture.seek(0)
    while chunk := capture.read(1 << 16):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
