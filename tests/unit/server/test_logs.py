"""The log pipeline: formats, access entries, batching into pipe-sized writes."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from modelport.core.settings import LogSettings
from modelport.server import logs
from modelport.server.logs import identity_hash, start_logs


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _run(settings: LogSettings, emit: object) -> list[str]:
    stream = io.StringIO()
    pipeline = start_logs(settings, stream)
    emit(pipeline)  # type: ignore[operator]
    pipeline.stop()
    return stream.getvalue().splitlines()


def test_json_access_and_ordinary_lines() -> None:
    info = SimpleNamespace(model="iris", version="3", request_id="r-1", identity_hash="abc123")

    def emit(pipeline: logs.Logs) -> None:
        assert pipeline.access is not None
        logging.getLogger("modelport.server").info("hello %s", "world", extra={"fields": {"n": 1}})
        pipeline.access.http("POST", b"/v2/models/iris/infer", b"200", 0.0012345, info)
        call = SimpleNamespace(model="ghost", version=None, request_id="r-2", identity_hash=None)
        pipeline.access.rpc("ModelInfer", "NOT_FOUND", 0.5, call)

    first, second, third = (json.loads(line) for line in _run(LogSettings(format="json"), emit))
    assert first["message"] == "hello world" and first["n"] == 1 and first["level"] == "info"
    assert second["logger"] == "modelport.access"
    assert {k: second[k] for k in ("method", "path", "status", "duration_ms")} == {
        "method": "POST",
        "path": "/v2/models/iris/infer",
        "status": 200,
        "duration_ms": 1.234,
    }
    assert (second["model"], second["version"], second["request_id"], second["identity"]) == (
        "iris",
        "3",
        "r-1",
        "abc123",
    )
    assert third["method"] == "GRPC"
    assert third["path"] == "/inference.GRPCInferenceService/ModelInfer"
    assert third["status"] == "NOT_FOUND" and third["model"] == "ghost"
    assert third["version"] is None and third["identity"] is None


def test_text_escapes_what_could_forge_a_line() -> None:
    info = SimpleNamespace(model=None, version=None, request_id="a\nb c", identity_hash=None)

    def emit(pipeline: logs.Logs) -> None:
        assert pipeline.access is not None
        pipeline.access.http("GET", b"/v2/x\xff", 404, 0.002, info)
        pipeline.access.http("GET", b"/v2/health/live", 200, 0.001, None)

    first, second = _run(LogSettings(), emit)
    assert first.endswith(
        " INFO access GET /v2/x\\xff 404 2.000ms model=- version=- request_id=a\\nb\\x20c "
        "identity=-"
    )
    assert second.endswith(" 200 1.000ms model=- version=- request_id=- identity=-")


def test_level_above_info_turns_the_access_log_off() -> None:
    assert start_logs(LogSettings(level="warning"), io.StringIO()).access is None
    assert start_logs(LogSettings(access=False), io.StringIO()).access is None


def test_writes_are_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    lines = [f"{i:04d} {'x' * 90}\n".encode() for i in range(200)]
    pieces = list(logs._pieces(lines))
    assert all(len(piece) <= 4096 and piece.endswith(b"\n") for piece in pieces)
    assert b"".join(pieces) == b"".join(lines)


def test_lines_go_to_the_descriptor_in_one_write_per_batch(tmp_path: object) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        pipeline = start_logs(LogSettings(), stream)
        for i in range(3):
            logging.getLogger("modelport.server").warning("line %d", i)
        pipeline.stop()
    with os.fdopen(read_end) as reader:
        got = reader.read().splitlines()
    assert [line.split(" ", 1)[1] for line in got] == [
        f"WARNING modelport.server line {i}" for i in range(3)
    ]


def test_identity_hash_is_short_and_stable() -> None:
    assert identity_hash("key:abc") == identity_hash("key:abc")
    assert identity_hash("key:abc") != identity_hash("key:abd")
    assert len(identity_hash("key:abc")) == 12 and "abc" not in identity_hash("key:abc")


_LINES = 6000
"""Lines per writer: about 1.5 MiB, more than even a widened pipe holds."""

_PIPE_WRITER = f"""
LINES = {_LINES}
import os, sys
from types import SimpleNamespace
from modelport.core.settings import LogSettings
from modelport.server.logs import start_logs
child, fd, go = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with os.fdopen(fd, "w") as stream:
    pipeline = start_logs(LogSettings(), stream)
    os.read(go, 1)  # every writer starts at once
    for i in range(LINES):
        info = SimpleNamespace(
            model=f"m{{child}}", version=str(i), request_id="r" * 150, identity_hash=None
        )
        pipeline.access.http("POST", b"/v2/models/m/infer", b"200", 0.001, info)
    pipeline.stop()
"""


def test_processes_sharing_a_pipe_never_split_each_others_lines() -> None:
    # Four processes each log a batch far larger than the pipe holds while the reader is slow,
    # so their writes are cut short and resumed: the lock keeps every line whole. (Fresh
    # interpreters, not forks of this multi-threaded test process.)
    read_end, write_end = os.pipe()
    go_read, go_write = os.pipe()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _PIPE_WRITER, str(child), str(write_end), str(go_read)],
            pass_fds=(write_end, go_read),
        )
        for child in range(4)
    ]
    os.close(write_end)
    os.close(go_read)
    time.sleep(1.0)  # let every interpreter start and open its log pipeline
    os.write(go_write, b"gggg")
    os.close(go_write)
    chunks = []
    with os.fdopen(read_end, "rb") as reader:
        while chunk := reader.read1(8192):
            chunks.append(chunk)
            time.sleep(0.0005)
    assert all(child.wait(60) == 0 for child in children)
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 4 * _LINES
    pattern = re.compile(
        r"\S+ INFO access POST /v2/models/m/infer 200 1\.000ms model=m(\d) version=(\d+) "
        r"request_id=r{150} identity=-"
    )
    seen = sorted((int(m[1]), int(m[2])) for m in map(pattern.fullmatch, lines) if m)
    assert seen == [(c, i) for c in range(4) for i in range(_LINES)]
