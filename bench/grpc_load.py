"""A bounded gRPC load generator for OIP ``ModelInfer`` (grpc.aio, one process, 4 channels).

``--concurrency`` coroutines each keep one request in flight, spread over the channels, for
``--duration`` seconds (after ``--warmup`` seconds that are not counted), so the load is
bounded in time and in requests outstanding. Messages are tritonclient's generated OIP
messages (package ``inference``), filled with typed contents (``fp32_contents`` /
``fp64_contents``), which every OIP server accepts.

    python -m bench.grpc_load 127.0.0.1:PORT tiny --datatype FP32 --row '[0.1, ...]' \
        --concurrency 16 --duration 10 --warmup 2 [--output probabilities] \
        [--metadata "authorization=Bearer mpk_..."]

``--metadata KEY=VALUE`` (repeatable) goes with every call: an API key as ``authorization``.

Prints one line ``BENCH_JSON {"rps", "p50_ms", "p99_ms", "ok", "errors", "first_error"}``.
The client is Python: past a few thousand requests per second it, not the server, may be the
limit, the same for every server it drives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc


def build_request(model: str, datatype: str, row: list[float], output: str | None) -> object:
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name = "input"
    tensor.datatype = datatype
    tensor.shape.extend([1, len(row)])
    if datatype == "FP32":
        tensor.contents.fp32_contents.extend(row)
    else:
        tensor.contents.fp64_contents.extend(row)
    if output:
        request.outputs.add().name = output
    return request


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


class Counters:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error = ""
        self.recording = False


Metadata = tuple[tuple[str, str], ...]


async def worker(
    stub: object, request: object, metadata: Metadata, stop_at: float, counters: Counters
) -> None:
    while True:
        start = time.perf_counter()
        if start >= stop_at:
            return
        try:
            await stub.ModelInfer(request, timeout=10, metadata=metadata)  # type: ignore[attr-defined]
        except grpc.aio.AioRpcError as exc:
            if counters.recording:
                counters.errors += 1
                if not counters.first_error:
                    counters.first_error = f"{exc.code().name}: {exc.details()}"
            continue
        if counters.recording:
            counters.latencies.append(time.perf_counter() - start)


async def check(stub: object, request: object, metadata: Metadata) -> None:
    """One request before the load: the answer must be one output of shape [1, 2]."""
    response = await stub.ModelInfer(request, timeout=30, metadata=metadata)  # type: ignore[attr-defined]
    shapes = [list(o.shape) for o in response.outputs]
    if not shapes or shapes[0] != [1, 2]:
        raise SystemExit(f"grpc_load: unexpected answer, output shapes {shapes}")


async def run(args: argparse.Namespace) -> dict[str, object]:
    row = [float(v) for v in json.loads(args.row)]
    request = build_request(args.model, args.datatype, row, args.output)
    metadata = parse_metadata(args.metadata)
    # Several HTTP/2 connections, as several clients would open: one connection would pin all
    # the load on one of the server's worker processes. A local subchannel pool per channel
    # keeps gRPC from sharing one connection between channels to the same target.
    channels = [
        grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(args.channels)
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        stubs = [service_pb2_grpc.GRPCInferenceServiceStub(channel) for channel in channels]
        await check(stubs[0], request, metadata)
        counters = Counters()
        loop_end = time.perf_counter() + args.warmup + args.duration
        tasks = [
            asyncio.create_task(
                worker(stubs[i % len(stubs)], request, metadata, loop_end, counters)
            )
            for i in range(args.concurrency)
        ]
        await asyncio.sleep(args.warmup)
        counters.recording = True
        measured_from = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - measured_from
    finally:
        for channel in channels:
            await channel.close()
    latencies = sorted(counters.latencies)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
        "ok": len(latencies),
        "errors": counters.errors,
        "first_error": counters.first_error,
    }


def parse_metadata(pairs: list[str]) -> Metadata:
    """``KEY=VALUE`` strings as gRPC metadata (keys lowercased, as gRPC requires)."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # Not echoed: the value may be a secret.
            raise SystemExit("grpc_load: --metadata expects KEY=VALUE")
        out.append((key.strip().lower(), value))
    return tuple(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT (loopback)")
    parser.add_argument("model")
    parser.add_argument("--datatype", choices=["FP32", "FP64"], default="FP32")
    parser.add_argument("--row", required=True, help="the input row as a JSON list")
    parser.add_argument("--output", help="ask for this output only")
    parser.add_argument(
        "--metadata",
        action="append",
        default=[],
        help="KEY=VALUE sent with every call (repeatable), e.g. authorization=Bearer KEY",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--channels", type=int, default=4, help="HTTP/2 connections")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    host = args.target.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        parser.error("the load generator only targets loopback addresses")
    if not 1 <= args.concurrency <= 1024 or not 0 < args.duration <= 600:
        parser.error("concurrency must be 1-1024 and duration 0-600 s")
    result = asyncio.run(run(args))
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
