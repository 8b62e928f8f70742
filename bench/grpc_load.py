"""The gRPC load generator for OIP ``ModelInfer``: h2load, nghttp2's HTTP/2 benchmark tool.

gRPC is HTTP/2: a unary call is a ``POST /inference.GRPCInferenceService/ModelInfer`` with
``content-type: application/grpc`` whose body is the length-prefixed protobuf message. h2load (C,
Debian's ``nghttp2-client``) sends that body on ``--channels`` connections with
``ceil(concurrency / channels)`` streams in flight each, from one thread, as wrk does for REST:
a warm-up run of ``--warmup`` seconds that is not counted, then ``--duration`` seconds measured.
A Python gRPC client costs more CPU per call than the servers measured here spend (about
200 us), and on a 2-core machine it takes that CPU from the server; h2load costs a few
microseconds.

The message is tritonclient's generated ``ModelInferRequest`` (package ``inference``) with typed
contents (``fp32_contents`` / ``fp64_contents``), which every OIP server accepts. Before the load,
one call through grpcio checks the answer (one output of shape [1, 2]) and one h2load request
measures the bytes of a successful answer.

Errors: gRPC reports a failed call in trailers under HTTP status 200, which h2load does not read.
A failed call carries no message, though, and every successful one the same bytes, so successful
calls = response data bytes / the bytes of one answer; the rest of the calls h2load finished,
and those it counts as failed, errored or timed out, are errors.

    python -m bench.grpc_load 127.0.0.1:PORT tiny --datatype FP32 --row '[0.1, ...]' \
        --concurrency 16 --duration 10 --warmup 2 [--output probabilities] \
        [--metadata "authorization=Bearer mpk_..."]

``--metadata KEY=VALUE`` (repeatable) goes with every call: an API key as ``authorization``.

Prints one line ``BENCH_JSON {"rps", "p50_ms", "p99_ms", "ok", "errors", "first_error"}``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"


class LoadError(SystemExit):
    """The load generator could not measure (not the server answering errors)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"grpc_load: {message}")


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


def grpc_frame(message: bytes) -> bytes:
    """``message`` as gRPC sends it: uncompressed flag, 4-byte big-endian length, bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


Metadata = tuple[tuple[str, str], ...]


def check(target: str, request: object, metadata: Metadata) -> None:
    """One call through grpcio: the answer must be one output of shape [1, 2]."""
    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            response = stub.ModelInfer(request, timeout=30, metadata=metadata)
        except grpc.RpcError as exc:
            raise LoadError(f"the check call failed: {exc.code().name}: {exc.details()}") from None
    shapes = [list(o.shape) for o in response.outputs]
    if not shapes or shapes[0] != [1, 2]:
        raise LoadError(f"unexpected answer, output shapes {shapes}")


class H2load:
    """h2load runs against one server's ``ModelInfer`` with one request body."""

    def __init__(self, target: str, body: Path, metadata: Metadata, work: Path) -> None:
        exe = shutil.which("h2load")
        if exe is None:
            raise LoadError("h2load is required (apt-get install nghttp2-client)")
        headers = [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
        self.argv = [exe, "-t1", "-d", str(body)]
        for name, value in headers:
            self.argv += ["-H", f"{name}: {value}"]
        self.url = f"http://{target}{METHOD}"
        self.work = work

    def run(self, options: list[str], timeout: float) -> tuple[dict[str, float], Path]:
        """Run with ``options``; return the summary counters and the per-request log."""
        log = self.work / "requests.log"
        log.unlink(missing_ok=True)
        argv = [*self.argv, *options, f"--log-file={log}", self.url]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LoadError(f"h2load: {exc}") from None
        if done.returncode != 0:
            raise LoadError(f"h2load exited {done.returncode}: {done.stderr.strip()[-300:]}")
        return parse_summary(done.stdout), log


def parse_summary(stdout: str) -> dict[str, float]:
    """The counters of h2load's summary: duration, requests done/failed/..., data bytes."""
    patterns = {
        "seconds": r"finished in ([\d.]+)(m?s),",
        "done": r"requests: \d+ total, \d+ started, (\d+) done",
        "failed": r"requests: .* (\d+) failed",
        "errored": r"requests: .* (\d+) errored",
        "timeout": r"requests: .* (\d+) timeout",
        "data_bytes": r"\((\d+)\) data",
    }
    out: dict[str, float] = {}
    for key, pattern in patterns.items():
        found = re.search(pattern, stdout)
        if found is None:
            raise LoadError(f"cannot read {key!r} from h2load's output: {stdout[-300:]!r}")
        value = float(found.group(1))
        if key == "seconds" and found.group(2) == "ms":
            value /= 1000
        out[key] = value
    return out


def latencies_ms(log: Path) -> list[float]:
    """Sorted latencies (ms) of the calls h2load logged with HTTP status 200.

    A gRPC error answers 200 too, so a run with errors has their latencies mixed in; such a run
    fails the benchmark anyway.
    """
    values = []
    with log.open() as rows:
        for row in rows:
            fields = row.split("\t")
            if len(fields) >= 3 and fields[1] == "200":
                values.append(int(fields[2]) / 1000)
    return sorted(values)


def run(args: argparse.Namespace) -> dict[str, object]:
    row = [float(v) for v in json.loads(args.row)]
    request = build_request(args.model, args.datatype, row, args.output)
    metadata = parse_metadata(args.metadata)
    check(args.target, request, metadata)
    with tempfile.TemporaryDirectory(prefix="grpc_load-") as work_dir:
        work = Path(work_dir)
        body = work / "request.bin"
        body.write_bytes(grpc_frame(request.SerializeToString()))  # type: ignore[attr-defined]
        h2load = H2load(args.target, body, metadata, work)
        one, _ = h2load.run(["-n1", "-c1"], timeout=30)
        answer_bytes = int(one["data_bytes"])
        if one["done"] != 1 or answer_bytes <= 5:
            raise LoadError("one call through h2load got no answer (the check call did)")
        load = [f"-c{args.channels}", f"-m{math.ceil(args.concurrency / args.channels)}"]
        # A separate warm-up run, as for wrk: h2load 1.52's --warm-up-time still counts the
        # warm-up's calls in its summary.
        h2load.run([*load, f"-D{args.warmup:g}"], timeout=args.warmup + 60)
        summary, log = h2load.run([*load, f"-D{args.duration:g}"], timeout=args.duration + 60)
        latencies = latencies_ms(log)
    data_bytes = int(summary["data_bytes"])
    if data_bytes % answer_bytes:
        raise LoadError(
            f"answers are not all {answer_bytes} bytes ({data_bytes} bytes in all), so failed "
            "calls cannot be told from their size"
        )
    ok = data_bytes // answer_bytes
    refused = int(summary["done"]) - ok
    lost = int(summary["failed"] + summary["errored"] + summary["timeout"])
    errors = max(0, refused) + lost
    first_error = ""
    if refused > 0:
        first_error = f"{refused} call(s) answered without a message (a gRPC error status)"
    elif lost:
        first_error = f"h2load: {lost} request(s) failed, errored or timed out"
    return {
        "rps": ok / summary["seconds"],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "ok": ok,
        "errors": errors,
        "first_error": first_error,
    }


def parse_metadata(pairs: list[str]) -> Metadata:
    """``KEY=VALUE`` strings as gRPC metadata (keys lowercased, as gRPC requires)."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # Not echoed: the value may be a secret.
            raise LoadError("--metadata expects KEY=VALUE")
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
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    parser.add_argument("--channels", type=int, default=4, help="HTTP/2 connections")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    host = args.target.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        parser.error("the load generator only targets loopback addresses")
    if not 1 <= args.concurrency <= 1024 or not 0 < args.duration <= 600:
        parser.error("concurrency must be 1-1024 and duration 0-600 s")
    if not 1 <= args.channels <= args.concurrency:
        parser.error("channels must be 1 to the concurrency")
    if args.warmup <= 0:
        parser.error("warmup must be above 0 s (h2load measures after a warm-up)")
    result = run(args)
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
