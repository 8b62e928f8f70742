"""Micro-benchmark of the REST codec's hot paths; a script, not collected by pytest.

Run it with ``python tests/unit/protocol/perf_codec.py [--wall]``. Each case prints the median time
per call over repeated ``timeit`` runs and its ratio to ``orjson.loads`` (decoders) or
``orjson.dumps`` (encoders) of the same payload, timed in alternating runs so that a busy machine
skews both alike. Times are this thread's CPU time, which leaves out the time other processes
took the CPU; ``--wall`` times wall-clock instead. No timing is asserted anywhere: the numbers
are for people comparing before and after a change.
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from modelport.core.datatypes import Datatype
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.protocol.rest import decode_infer_request, encode_infer_response

_REPEAT = 15
_TARGET_S = 0.02  # each timeit run lasts about this long
_CLOCK = time.perf_counter if "--wall" in sys.argv[1:] else time.thread_time


def _loop_count(fn: Callable[[], Any]) -> int:
    """Return how many calls of ``fn`` take about ``_TARGET_S``."""
    number = 1
    while True:
        elapsed = timeit.timeit(fn, number=number, timer=_CLOCK)
        if elapsed >= _TARGET_S / 4 or number >= 1 << 20:
            return max(1, int(number * _TARGET_S / max(elapsed, 1e-9)))
        number *= 4


def _compare(
    codec: Callable[[], Any], reference: Callable[[], Any]
) -> tuple[float, float, float, float]:
    """Time ``codec`` and ``reference`` in alternating runs, so that both see the same load.

    Returns:
        The median time per call of each (microseconds), the median of the per-pair ratios,
        and the ratio of the best runs.
    """
    n_codec, n_reference = _loop_count(codec), _loop_count(reference)
    codec_us: list[float] = []
    reference_us: list[float] = []
    for _ in range(_REPEAT):
        codec_us.append(timeit.timeit(codec, number=n_codec, timer=_CLOCK) / n_codec * 1e6)
        reference_us.append(
            timeit.timeit(reference, number=n_reference, timer=_CLOCK) / n_reference * 1e6
        )
    ratios = [c / r for c, r in zip(codec_us, reference_us, strict=True)]
    return (
        statistics.median(codec_us),
        statistics.median(reference_us),
        statistics.median(ratios),
        min(codec_us) / min(reference_us),
    )


def _row_request(binary: bool, nested: bool = False) -> tuple[bytes, int | None]:
    values = [round(0.1 * (i + 1), 1) for i in range(16)]  # 0.1, 0.2, ... 1.6
    tensor: dict[str, Any] = {"name": "X", "datatype": "FP32", "shape": [1, 16]}
    if not binary:
        tensor["data"] = [values] if nested else values
        return orjson.dumps({"inputs": [tensor]}), None
    raw = np.array(values, dtype="<f4").tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps({"inputs": [tensor]})
    return header + raw, len(header)


def _batch_request(rows: int) -> bytes:
    data = np.random.default_rng(0).random((rows, 16)).round(4).tolist()
    tensor = {"name": "X", "datatype": "FP32", "shape": [rows, 16], "data": data}
    return orjson.dumps({"inputs": [tensor]})


def _row_response() -> InferenceResponse:
    # What ONNX Runtime hands back for a classifier: int64 labels, float32 probabilities.
    return InferenceResponse(
        model_name="iris",
        outputs=[
            Tensor("label", Datatype.INT64, (1,), np.array([1], dtype=np.int64)),
            Tensor(
                "probabilities", Datatype.FP32, (1, 2), np.array([[0.25, 0.75]], dtype=np.float32)
            ),
        ],
    )


def _batch_response(rows: int) -> InferenceResponse:
    rng = np.random.default_rng(1)
    return InferenceResponse(
        model_name="iris",
        outputs=[
            Tensor("label", Datatype.INT64, (rows,), rng.integers(0, 2, rows, dtype=np.int64)),
            Tensor("probabilities", Datatype.FP32, (rows, 2), rng.random((rows, 2), "f4")),
        ],
    )


def _binary_request_for(response: InferenceResponse) -> InferenceRequest:
    x = Tensor("X", Datatype.FP32, (1, 16), np.zeros((1, 16), dtype=np.float32))
    outputs = [RequestedOutput(t.name, {"binary_data": True}) for t in response.outputs]
    return InferenceRequest(inputs=[x], outputs=outputs)


def _json_request_for() -> InferenceRequest:
    x = Tensor("X", Datatype.FP32, (1, 16), np.zeros((1, 16), dtype=np.float32))
    return InferenceRequest(inputs=[x])


def _report(name: str, reference: str, timings: tuple[float, float, float, float]) -> None:
    codec_us, reference_us, ratio, best_ratio = timings
    print(
        f"{name:<38} {codec_us:7.2f} us   {reference} {reference_us:6.2f} us   "
        f"ratio {ratio:6.2f}  (best runs: {best_ratio:5.2f})"
    )


def _decode_case(name: str, body: bytes, header_length: int | None) -> None:
    decode_infer_request(body, header_length)  # fail loudly before timing
    json_part = body if header_length is None else body[:header_length]
    timings = _compare(
        lambda: decode_infer_request(body, header_length), lambda: orjson.loads(json_part)
    )
    _report(name, "orjson.loads", timings)


def _encode_case(name: str, response: InferenceResponse, request: InferenceRequest | None) -> None:
    body, header_length = encode_infer_response(response, request)
    # The same payload as plain Python values, which is what a bare handler would dump.
    doc = orjson.loads(body if header_length is None else body[:header_length])
    timings = _compare(lambda: encode_infer_response(response, request), lambda: orjson.dumps(doc))
    _report(name, "orjson.dumps", timings)


def main() -> None:
    """Time every case and print one line each."""
    clock = "wall-clock" if _CLOCK is time.perf_counter else "thread CPU"
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, orjson {orjson.__version__}")
    print(
        f"{clock} time per call, median of {_REPEAT} runs; ratio: median of the per-run ratios "
        "to orjson on the same JSON payload, timed alternately"
    )
    body, _ = _row_request(binary=False)
    deadline = time.perf_counter() + 0.5
    while time.perf_counter() < deadline:  # let the CPU reach its working clock first
        decode_infer_request(body, None)
    _decode_case("decode JSON FP32 [1,16]", *_row_request(binary=False))
    _decode_case("decode JSON FP32 [1,16] nested", *_row_request(binary=False, nested=True))
    _decode_case("decode binary FP32 [1,16]", *_row_request(binary=True))
    _decode_case("decode JSON FP32 [64,16] nested", _batch_request(64), None)
    _encode_case("encode JSON INT64 [1] + FP32 [1,2]", _row_response(), _json_request_for())
    _encode_case("encode JSON, request None", _row_response(), None)
    response = _row_response()
    _encode_case("encode binary INT64 [1] + FP32 [1,2]", response, _binary_request_for(response))
    _encode_case("encode JSON INT64 [64] + FP32 [64,2]", _batch_response(64), _json_request_for())


if __name__ == "__main__":
    main()
