"""Output held back around a model load: replayed on success, dropped on a modelport error.

Each case runs in a fresh interpreter, whose standard streams are the real file descriptors
(under pytest, ``print`` does not go through them).
"""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import os, sys
from modelport.cli._quiet import held_output
from modelport.core.errors import IntegrityError

def noisy():
    os.write(1, b"native stdout\\n")  # what a C++ library writes, past Python's sys.stdout
    os.write(2, b"native stderr\\n")
    print("python stdout")
    print("python stderr", file=sys.stderr)

try:
    with held_output():
        noisy()
        {fail}
except Exception as exc:
    print("after", type(exc).__name__, flush=True)
"""


def run(fail: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(fail=fail)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout, done.stderr


def test_output_is_replayed_on_success() -> None:
    assert run("pass") == ("native stdout\npython stdout\n", "native stderr\npython stderr\n")


def test_output_is_dropped_when_the_work_fails_with_a_modelport_error() -> None:
    assert run("raise IntegrityError('not a model')") == ("after IntegrityError\n", "")


def test_output_is_kept_for_an_unexpected_error() -> None:
    out, err = run("1 / 0")
    assert out == "native stdout\npython stdout\nafter ZeroDivisionError\n"
    assert err == "native stderr\npython stderr\n"


def test_a_closed_descriptor_is_left_alone() -> None:
    script = (
        "import os\n"
        "from modelport.cli._quiet import held_output\n"
        "os.close(2)\n"
        "with held_output():\n"
        "    os.write(1, b'native stdout\\n')\n"
        "    print('python stdout', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "native stdout\npython stdout\n")
