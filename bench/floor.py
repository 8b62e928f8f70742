"""The floor: the cheapest OIP-shaped JSON endpoint the same HTTP stack can serve.

A raw ASGI app (no framework, no model): it reads the request body, parses it with
``orjson.loads`` (so the cost of decoding the request is in the floor) and answers every POST
with one constant inference response. Health probes answer 200. Run under the same server and
worker count as modelport:

    uvicorn bench.floor:app --loop uvloop --http httptools --workers N --no-access-log

No server that parses JSON requests over HTTP/1.1 on this stack can be faster than this, so
modelport / floor says how much of the floor modelport's own work (routing, validation, tensor
decoding, the model, encoding) costs.
"""

from __future__ import annotations

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
        orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        body = b'{"error": "malformed JSON"}'
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
    await send({"type": "http.response.body", "body": RESPONSE})
