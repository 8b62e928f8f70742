"""The protocol package exports what we mean to export."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "modelport.protocol.rest": {
        "decode_infer_request",
        "decode_infer_response",
        "decode_json_object",
        "decode_raw_input",
        "encode_infer_request",
        "encode_infer_response",
    },
    "modelport.protocol.binary": {
        "array_from_buffer",
        "array_to_buffer",
        "pack_bytes",
        "resolve_shape",
        "unpack_bytes",
    },
    "modelport.protocol.tensor_data": {
        "array_from_json",
        "numeric_from_json_fast",
        "coerce_array",
        "flatten",
        "float_to_bf16_bits",
        "json_data",
        "object_array",
    },
    "modelport.protocol.header": {
        "DATATYPES",
        "MAX_DIMS",
        "MAX_EXTENT",
        "TensorHeader",
        "check_request_parameters",
        "json_summary",
        "load_json",
        "optional_string",
        "parse_parameters",
        "parse_requested_outputs",
        "parse_tensor_header",
        "shape_problem",
    },
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_exported_names(module: str) -> None:
    loaded = importlib.import_module(module)
    assert set(loaded.__all__) == EXPECTED[module]
    for name in loaded.__all__:
        assert hasattr(loaded, name)


def test_protocol_imports_no_web_or_ml_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, modelport.protocol.rest\n"
        "bad = {'starlette', 'fastapi', 'uvicorn', 'grpc', 'sklearn', 'torch', 'onnxruntime', 'tritonclient'}\n"
        "print(sorted(bad & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
