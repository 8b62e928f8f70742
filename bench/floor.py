"""The floor: the cheapest OIP-shaped JSON endpoint the same HTTP stack can serve.

A raw ASGI app (no framework, no model): it reads the request body, parses it with
``orjson.loads`` (so the cost of decoding the request is in the floor) and answers every POST
with one constant inference response. Health probes answer 200. Run it as modelport runs:
the same HTTP server (uvicorn, uvloop, modelport's httptools protocol
``modelport.server.rest.http_protocol.HttpProtocol``, no access log), the same worker count and the
same sockets (one per worker sharing the port, ``modelport.server.supervisor.bind_workers``):

    python bench/floor.py --port PORT --workers N

No server that parses JSON requests over HTTP/1.1 on this stack can be faster than this, so
modelport / floor says how much of the floor modelport's own work (routing, validation, tensor
decoding, the model, encoding) costs.

With ``--onnx NAME=FILE`` (repeatable) the same script is the *bare ONNX Runtime handler*, the
scale the floor figure is read against: ``POST /v2/models/NAME/infer`` parses the JSON, makes
the first input's ``data`` a float32 array of its ``shape``, runs the ONNX Runtime session for
the first requested output (one intra-op thread, as modelport's workers) and writes that output
as JSON. It checks nothing (no authentication, validation, limits, statistics or metrics) and
answers anything it cannot handle with a 400, so it is the least a server that runs the model
must do per request on this stack.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

import orjson

RESPONSE = orjson.dumps(
    {
        "model_name": "floor",
        "model_version": "1",
        "outputs": [
            {"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]}
        ],
    }
)
_JSON = [(b"content-type", b"application/json")]
_OK_HEADERS = [*_JSON, (b"content-length", str(len(RESPONSE)).encode())]
_EMPTY_HEADERS = [(b"content-length", b"0")]


SESSIONS: dict[str, Any] = {}
"""Model name -> onnxruntime session, filled by ``--onnx`` (the bare handler)."""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": _EMPTY_HEADERS})
        await send({"type": "http.response.body", "body": b""})
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        doc = orjson.loads(b"".join(chunks))
        if SESSIONS:
            answer = _run_model(scope["path"], doc)
            headers = [*_JSON, (b"content-length", str(len(answer)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
    except Exception as exc:  # malformed JSON, or a request the bare handler cannot run
        body = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
    await send({"type": "http.response.body", "body": RESPONSE})


def _run_model(path: str, doc: dict[str, Any]) -> bytes:
    """The bare handler: the first input as float32, one ONNX Runtime run, the output as JSON."""
    import numpy as np

    name = path.split("/")[3]  # /v2/models/NAME/infer
    session, input_name = SESSIONS[name]
    tensor = doc["inputs"][0]
    array = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    output = doc["outputs"][0]["name"]
    (value,) = session.run([output], {input_name: array})
    return orjson.dumps(
        {
            "model_name": name,
            "model_version": "1",
            "outputs": [
                {"name": output, "datatype": "FP32", "shape": value.shape, "data": value.ravel()}
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _load_sessions(specs: list[str]) -> None:
    import onnxruntime as ort

    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--onnx wants NAME=FILE, got {spec!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        SESSIONS[name] = (session, session.get_inputs()[0].name)


def main() -> int:
    """Serve :func:`app` on ``--port`` with ``--workers`` processes, as modelport's workers do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--onnx",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="serve NAME with the bare ONNX Runtime handler instead of the constant answer",
    )
    args = parser.parse_args()
    _load_sessions(args.onnx)

    import uvicorn

    from modelport.server.rest.http_protocol import HttpProtocol
    from modelport.server.supervisor import bind_workers

    sockets = bind_workers(args.host, args.port, args.workers)
    children = []
    for slot in range(args.workers):
        pid = os.fork()
        if pid == 0:
            config = uvicorn.Config(
                app,
                loop="uvloop",
                http=HttpProtocol,
                lifespan="on",
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                server_header=False,
            )
            uvicorn.Server(config).run(sockets=[sockets[slot % len(sockets)]])
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(pid, signal.SIGTERM) for pid in children])
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
