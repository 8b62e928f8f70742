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
from typing import BinaryIO, TextIO

from modelport.core.errors import ModelportError

__all__ = ["held_output"]


@contextmanager
def held_output() -> Iterator[None]:
    """Capture file descriptors 1 and 2 for the block; replay them unless it raises our error.

    Raises:
        ModelportError: Whatever the block raised; what it printed is dropped.
    """
    streams = ((1, sys.stdout), (2, sys.stderr))
    if not all(_is_open(fd) for fd, _ in streams):
        # A closed descriptor would be reused by the ones opened here: hold nothing back.
        yield
        return
    with ExitStack() as stack:
        held: list[tuple[int, int, TextIO, BinaryIO]] = []
        for fd, stream in streams:
            stream.flush()
            capture: BinaryIO = stack.enter_context(tempfile.TemporaryFile())
            held.append((fd, os.dup(fd), stream, capture))
            os.dup2(capture.fileno(), fd)
        replay = True
        try:
            yield
        except ModelportError:
            replay = False
            raise
        finally:
            for fd, saved, stream, capture in held:
                stream.flush()
                os.dup2(saved, fd)
                os.close(saved)
                if replay:
                    _copy_to(capture, fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _copy_to(capture: BinaryIO, fd: int) -> None:
    capture.seek(0)
    while chunk := capture.read(1 << 16):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
