"""The servers under test: each configuration, how it is launched and what request it is sent.

Families: ``modelport`` (the system under test), the peers ``mlserver`` and ``kserve``, and the
``floor`` (bench/floor.py). Every server binds 127.0.0.1 only, on ports picked at launch, and
writes no line per request (MLServer ``debug=false``, KServe's access and latency logs off,
uvicorn ``--no-access-log``): logging is not what is being compared. Everything else is each
server's default unless the configuration's label says otherwise. modelport runs as it ships,
authentication on, its clients sending an API key (bench/modelport_home.py); the ``-noauth``
configurations run it with ``--no-auth``, to measure what authentication costs.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.modelport_home import ModelportHome
from bench.models import INPUT, BenchModel
from bench.procs import Launch, free_port

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"

PEER_FAMILIES = ("mlserver", "kserve")


@dataclass(frozen=True)
class Target:
    """One server configuration.

    ``models`` are the models it is benchmarked on (the floor answers any path); ``grpc``
    marks the configurations whose gRPC port is also driven (tiny model only). ``auth`` is
    False for modelport run with ``--no-auth`` (and for servers that have no authentication).
    """

    key: str
    label: str
    family: str
    models: tuple[str, ...]
    grpc: bool = False
    workers: int = 1
    parallel_workers: int | None = None
    adaptive_batching: bool = False
    auth: bool = False
    access_log: bool = False
    """modelport with its access log on (one line per request); the other modelport
    configurations turn it off, as the peers write no line per request."""

    @property
    def is_peer(self) -> bool:
        return self.family in PEER_FAMILIES

    @property
    def modelport_authenticated(self) -> bool:
        """modelport as it ships: authentication on, requests carry the API key."""
        return self.family == "modelport" and self.auth


@dataclass
class ModelportCli:
    """The extra ``modelport serve`` options in use, after dropping those this build rejects."""

    args: list[str]
    mlp_args: list[str]
    exe: Path = REPO / ".venv" / "bin" / "modelport"
    rejected: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def groups(args: list[str]) -> list[list[str]]:
        """Split ``--opt value --flag --opt=value`` into one list per option."""
        out: list[list[str]] = []
        for arg in args:
            if arg.startswith("--") or not out:
                out.append([arg])
            else:
                out[-1].append(arg)
        return out

    @staticmethod
    def option(group: list[str]) -> str:
        return group[0].split("=", 1)[0]

    def drop(self, option: str, reason: str) -> None:
        """Stop passing ``option``; ``reason`` is shown in the report."""
        self.rejected[option] = reason
        for name in ("args", "mlp_args"):
            kept = [g for g in self.groups(getattr(self, name)) if self.option(g) != option]
            setattr(self, name, [a for g in kept for a in g])

    def options(self) -> set[str]:
        """The options passed to modelport, ``--grpc-port`` included (the harness adds it)."""
        given = {self.option(g) for g in self.groups(self.args + self.mlp_args)}
        return given | ({"--grpc-port"} - set(self.rejected))

    def probe(self) -> None:
        """Drop every option that ``modelport serve --help`` does not list."""
        env = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
        try:
            text = subprocess.run(
                [str(self.exe), "serve", "--help"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            ).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(
                f"modelport: could not read `modelport serve --help` ({exc}); passing all options"
            )
            return
        for option in sorted(self.options()):
            if not re.search(re.escape(option) + r"\b", text):
                self.drop(option, "not an option of this modelport build")

    def value(self, option: str, default: str | None = None) -> str | None:
        for group in self.groups(self.args):
            if self.option(group) == option:
                if "=" in group[0]:
                    return group[0].split("=", 1)[1]
                return group[1] if len(group) > 1 else default
        return default

    @property
    def workers(self) -> int:
        return int(self.value("--workers", "1") or 1)

    def wants_grpc(self) -> bool:
        return "--grpc-port" not in self.rejected


@dataclass
class Context:
    """What every launch needs: model files, folders, the modelport options, home and key."""

    out: Path
    models: dict[str, BenchModel]
    artifact: str
    modelport: ModelportCli
    home: ModelportHome

    def headers(self, target: Target) -> dict[str, str]:
        """The headers (the API key) every request to ``target`` carries besides its body's."""
        if target.modelport_authenticated and self.home.api_key:
            return {"Authorization": f"Bearer {self.home.api_key}"}
        return {}

    def unavailable(self, target: Target) -> str | None:
        """None when ``target`` can be launched, else why not."""
        if target.family == "modelport":
            return self.home.unavailable
        return peer_installed(target.family) if target.is_peer else None

    def datatype(self, target: Target) -> str:
        """The input datatype a configuration expects: FP32 for ONNX graphs, else FP64."""
        if target.family == "bare":
            return "FP32"
        if target.family in ("modelport", "floor") and self.artifact == "onnx":
            return "FP32"
        return "FP64"

    def request(self, target: Target, model: str) -> dict[str, object]:
        """The single-row OIP request sent to ``target`` for ``model``.

        Every server computes and returns the class probabilities only: modelport is asked for
        that output by name, MLServer is configured with ``predict_fn=predict_proba`` and the
        KServe model returns nothing else. The floor gets modelport's request, and the bare ONNX
        Runtime handler the request modelport gets when it serves the ONNX export.
        """
        bench_model = self.models[model]
        body: dict[str, object] = {
            "inputs": [
                {
                    "name": INPUT,
                    "shape": [1, bench_model.n_features],
                    "datatype": self.datatype(target),
                    "data": bench_model.row,
                }
            ]
        }
        if target.family == "bare":
            body["outputs"] = [{"name": "probabilities"}]
        elif target.family in ("modelport", "floor"):
            output = "probabilities" if self.artifact == "onnx" else "predict_proba"
            body["outputs"] = [{"name": output}]
        return body

    def body_file(self, target: Target, model: str) -> Path:
        path = self.out / "bodies" / f"{target.key}-{model}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.request(target, model), separators=(",", ":")))
        return path

    def grpc_output(self, target: Target) -> str | None:
        if target.family == "modelport":
            return "probabilities" if self.artifact == "onnx" else "predict_proba"
        return None


def all_targets(models: tuple[str, ...]) -> list[Target]:
    """Every configuration of the full benchmark, for the given models."""
    targets: list[Target] = []
    for model in models:
        grpc = model == "tiny"
        targets += [
            Target(f"modelport-{model}", "modelport", "modelport", (model,), grpc=grpc, auth=True),
            Target(
                f"modelport-{model}-noauth", "modelport --no-auth", "modelport", (model,), grpc=grpc
            ),
        ]
        if model == "tiny":
            # What the access log costs: modelport as above, one log line per request, written
            # to a pipe.
            targets.append(
                Target(
                    "modelport-tiny-accesslog",
                    "modelport, access log on",
                    "modelport",
                    (model,),
                    auth=True,
                    access_log=True,
                )
            )
    targets += [
        Target("mlserver-default", "MLServer default", "mlserver", models, grpc=True),
        Target(
            "mlserver-pw0",
            "MLServer parallel_workers=0",
            "mlserver",
            models,
            grpc=True,
            parallel_workers=0,
        ),
        Target(
            "mlserver-batch",
            "MLServer adaptive batching",
            "mlserver",
            models,
            grpc=True,
            adaptive_batching=True,
        ),
        Target("kserve-w1", "KServe 1 worker", "kserve", models, workers=1),
        Target("kserve-w2", "KServe 2 workers", "kserve", models, workers=2),
        Target("floor", "floor (uvicorn + orjson, no model)", "floor", models),
    ]
    if "tiny" in models:
        # The scale for the floor figure: the least a server running the model does.
        targets.append(Target("bare-onnx", "bare ONNX Runtime handler", "bare", ("tiny",)))
    return targets


QUICK_KEYS = (
    "modelport-tiny",
    "modelport-tiny-noauth",
    "modelport-mlp",
    "mlserver-default",
    "kserve-w1",
    "floor",
)


def peer_installed(family: str) -> str | None:
    """None when the peer's environment is ready, else why not."""
    venv = VENVS / family
    if not (venv / ".bench-requirements").is_file():
        return f"{venv.relative_to(REPO)} is not installed (bench/setup_peers.py failed?)"
    return None


# --- launches -------------------------------------------------------------------------------


def launch(target: Target, ctx: Context) -> Launch:
    """Build the command line (and files) that start ``target`` on fresh loopback ports."""
    builder = {
        "modelport": _modelport,
        "mlserver": _mlserver,
        "kserve": _kserve,
        "floor": _floor,
        "bare": _floor,
    }[target.family]
    return builder(target, ctx)


def _modelport(target: Target, ctx: Context) -> Launch:
    port = free_port()
    cli = ctx.modelport
    extra = list(cli.args)
    if "mlp" in target.models:
        extra += cli.mlp_args
    grpc_port: int | None = None
    if cli.wants_grpc():
        given = cli.value("--grpc-port")
        if given is None:
            grpc_port = free_port()
            extra += ["--grpc-port", str(grpc_port)]
        else:
            grpc_port = int(given)
    if not target.auth:
        extra.append("--no-auth")
    models = [ctx.home.specs[m] for m in target.models]
    argv = [
        str(cli.exe),
        "serve",
        *models,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    env = {**ctx.home.env, "MODELPORT_LOG__ACCESS": "true" if target.access_log else "false"}
    # The access log's lines go through a pipe, as a container runtime reads them: the case
    # where worker processes must keep each other's lines whole.
    return Launch(argv, port, grpc_port, cwd=REPO, env=env, log_through_pipe=target.access_log)


def _mlserver(target: Target, ctx: Context) -> Launch:
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    folder = ctx.out / "mlserver" / target.key
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "debug": False,
    }
    if target.parallel_workers is not None:
        settings["parallel_workers"] = target.parallel_workers
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    for name in target.models:
        model_settings: dict[str, object] = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {
                "uri": str(ctx.models[name].joblib_path),
                "version": "1",
                "extra": {"predict_fn": "predict_proba"},
            },
        }
        if target.adaptive_batching:
            # Same bounds as modelport's batching: 64 rows, 500 microseconds.
            model_settings["max_batch_size"] = 64
            model_settings["max_batch_time"] = 0.0005
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    argv = [str(VENVS / "mlserver" / "bin" / "mlserver"), "start", str(folder)]
    return Launch(argv, port, grpc_port, cwd=folder)


def _kserve(target: Target, ctx: Context) -> Launch:
    port = free_port()
    models = [f"{m}={ctx.models[m].joblib_path}" for m in target.models]
    argv = [
        str(VENVS / "kserve" / "bin" / "python"),
        str(BENCH / "peers" / "kserve_server.py"),
        *models,
        "--http_port",
        str(port),
        "--grpc_port",
        str(free_port()),
        "--enable_grpc",
        "false",
        "--workers",
        str(target.workers),
        "--enable_latency_logging",
        "false",
        "--log_config_file",
        str(BENCH / "peers" / "kserve_logging.json"),
    ]
    return Launch(argv, port, None, cwd=ctx.out)


def _floor(target: Target, ctx: Context) -> Launch:
    port = free_port()
    argv = [
        str(REPO / ".venv" / "bin" / "python"),
        str(BENCH / "floor.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(ctx.modelport.workers),
    ]
    if target.family == "bare":
        argv += [f"--onnx={m}={ctx.models[m].onnx_path}" for m in target.models]
    return Launch(argv, port, None, cwd=REPO)
