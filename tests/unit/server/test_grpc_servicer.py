"""The gRPC servicer in-process: a grpc.aio server on a loopback port in this process, called
through the generated stub. Authentication before argument checks, error mapping, the model
configuration and metadata, and the repository's audit entries.

The servicer runs with a real data plane (a Python model) and a real security store (SQLite in a
temporary data directory), without starting a server process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from modelport.protocol.grpc_gen import inference_pb2 as pb
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.security.identity import parse_grants
from modelport.security.store import SecurityStore
from modelport.server.grpc.server import create_grpc_server
from modelport.service.access import AccessControl
from modelport.service.dataplane import DataPlane

Call = Callable[[pb_grpc.GRPCInferenceServiceStub], Awaitable[Any]]


@pytest.fixture()
def parts(dataplane: DataPlane, access: AccessControl) -> tuple[DataPlane, AccessControl]:
    return dataplane, access


def run(parts: tuple[DataPlane, AccessControl], *calls: Call) -> list[Any]:
    """Serve the servicer on a free loopback port and make ``calls``; each answer or error."""

    async def go() -> list[Any]:
        dataplane, access = parts
        server, port = create_grpc_server(dataplane, access, "127.0.0.1", 0, 1 << 20)
        await server.start()
        answers: list[Any] = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                for call in calls:
                    try:
                        answers.append(await call(stub))
                    except grpc.aio.AioRpcError as exc:
                        answers.append(exc)
        finally:
            await server.stop(None)
        return answers

    return asyncio.run(go())


def key(store: SecurityStore, *grants: str) -> list[tuple[str, str]]:
    _, token = store.create_key("test", parse_grants(list(grants)), None, "tests")
    return [("authorization", f"Bearer {token}")]


def status(answer: Any) -> tuple[grpc.StatusCode, str]:
    assert isinstance(answer, grpc.aio.AioRpcError), answer
    return answer.code(), answer.details() or ""


def infer_request(name: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=name)
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    return request


def test_an_unauthenticated_call_is_told_so_before_its_arguments_are_checked(
    parts: tuple[DataPlane, AccessControl],
) -> None:
    answers = run(
        parts,
        lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name="")),
        lambda s: s.ModelInfer(pb.ModelInferRequest(model_name="")),
        lambda s: s.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="")),
    )
    assert [status(a)[0] for a in answers] == [grpc.StatusCode.UNAUTHENTICATED] * 3


def test_an_admitted_call_with_bad_arguments_is_invalid(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    admin = key(store, "admin")
    [answer] = run(
        parts, lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name=""), metadata=admin)
    )
    assert status(answer)[0] is grpc.StatusCode.INVALID_ARGUMENT


def test_two_authorization_entries_and_bad_request_ids_are_refused(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    admin, viewer = key(store, "admin"), key(store, "viewer")
    request = pb.ModelMetadataRequest(name="fraud-a")
    answers = run(
        parts,
        lambda s: s.ModelMetadata(request, metadata=admin + viewer),
        lambda s: s.ModelMetadata(request, metadata=[*admin, ("x-request-id", "a b")]),
    )
    code, message = status(answers[0])
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "authorization metadata was sent more than once" in message
    code, message = status(answers[1])
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "x-request-id must be" in message


def test_out_of_scope_and_missing_models(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    scoped = key(store, "predictor:fraud-*")
    answers = run(
        parts,
        lambda s: s.ModelInfer(infer_request("credit-a"), metadata=scoped),
        lambda s: s.ModelInfer(infer_request("credit-zz"), metadata=scoped),
        lambda s: s.ModelInfer(infer_request("fraud-a"), metadata=scoped),
    )
    (code_a, message_a), (code_b, message_b) = status(answers[0]), status(answers[1])
    assert code_a is code_b is grpc.StatusCode.PERMISSION_DENIED
    assert "outside the scope" in message_a
    assert message_a.replace("credit-a", "X") == message_b.replace("credit-zz", "X")
    assert list(answers[2].outputs[0].shape) == [1, 2]


def test_model_config_and_metadata(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    viewer = key(store, "viewer")
    config, metadata = run(
        parts,
        lambda s: s.ModelConfig(pb.ModelConfigRequest(name="fraud-a"), metadata=viewer),
        lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name="fraud-a"), metadata=viewer),
    )
    assert config.config.name == "fraud-a"
    assert config.config.max_batch_size == 0
    assert [(t.name, list(t.dims)) for t in config.config.input] == [("x", [-1, 2])]
    assert config.config.input[0].data_type == pb.DataType.Value("TYPE_FP32")
    assert metadata.name == "fraud-a" and list(metadata.versions) == ["1"]


def test_unload_is_audited_before_and_after(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    admin = [*key(store, "admin"), ("x-request-id", "grpc-7")]
    unload = pb.RepositoryModelUnloadRequest(model_name="fraud-a")
    [answer] = run(parts, lambda s: s.RepositoryModelUnload(unload, metadata=admin))
    assert isinstance(answer, pb.RepositoryModelUnloadResponse)
    entries = [
        (e.action, e.target, e.outcome, e.request_id)
        for e in store.iter_audit()
        if e.action == "model.unload"
    ]
    assert entries == [
        ("model.unload", "fraud-a", "started", "grpc-7"),
        ("model.unload", "fraud-a", "ok", "grpc-7"),
    ]


def test_a_load_with_unknown_parameters_is_refused_before_it_is_audited(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    admin = key(store, "admin")
    load = pb.RepositoryModelLoadRequest(model_name="fraud-a")
    load.parameters["colour"].string_param = "blue"
    [answer] = run(parts, lambda s: s.RepositoryModelLoad(load, metadata=admin))
    code, message = status(answer)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "colour" in message
    assert not [e for e in store.iter_audit() if e.action == "model.load"]


def test_model_metadata_carries_its_properties(
    parts: tuple[DataPlane, AccessControl], store: SecurityStore
) -> None:
    viewer = key(store, "viewer")
    [metadata] = run(
        parts, lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name="fraud-a"), metadata=viewer)
    )
    assert dict(metadata.properties) == {"version": "1", "runtime": "python", "batching": "false"}
