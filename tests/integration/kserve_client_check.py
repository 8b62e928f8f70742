"""Runs in its own virtual environment with the KServe SDK; prints what its REST client saw as JSON.

Usage: python kserve_client_check.py BASE_URL
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(url: str) -> dict[str, object]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=1, timeout=30))
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    found: dict[str, object] = {
        "live": await client.is_server_live(url),
        "ready": await client.is_server_ready(url),
        "model_ready": await client.is_model_ready(url, "iris"),
    }
    for binary in (False, True):
        inp = InferInput("input", list(rows.shape), "FP64")
        inp.set_data_from_numpy(rows, binary_data=binary)
        request = InferRequest(model_name="iris", infer_inputs=[inp], request_id=f"k-{binary}")
        response = await client.infer(url, request, model_name="iris")
        outputs = {o.name: o.as_numpy().tolist() for o in response.outputs}
        found[f"binary={binary}"] = {"id": response.id, "outputs": outputs}
    try:
        bad = InferInput("input", [1, 3], "FP64")
        bad.set_data_from_numpy(np.zeros((1, 3)))
        await client.infer(
            url, InferRequest(model_name="iris", infer_inputs=[bad]), model_name="iris"
        )
        found["error"] = None
    except Exception as exc:  # noqa: BLE001 - report whatever the client raised
        found["error"] = f"{type(exc).__name__}: {exc}"
    await client.close()
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
