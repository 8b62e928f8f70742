from __future__ import annotations

import subprocess
import sys

import modelport.registry


def test_exported_names() -> None:
    assert sorted(modelport.registry.__all__) == [
        "AliasEvent",
        "ArtifactSigner",
        "ArtifactStore",
        "CompileReport",
        "DEFAULT_JURISDICTION",
        "Lineage",
        "MetadataStore",
        "ModelSummary",
        "ModelVersion",
        "NewVersion",
        "ReferenceProfile",
        "ServingArtifact",
        "StoredArtifact",
        "VersionStatus",
        "digest_file",
        "parse_digest",
    ]
    for name in modelport.registry.__all__:
        assert getattr(modelport.registry, name) is not None


def test_registry_imports_no_other_layer_or_framework() -> None:
    forbidden = (
        "modelport.runtimes",
        "modelport.service",
        "modelport.server",
        "modelport.cli",
        "starlette",
        "uvicorn",
        "sklearn",
        "onnxruntime",
        "torch",
        "xgboost",
        "lightgbm",
    )
    code = (
        "import sys, modelport.registry\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r} "
        f"or m.startswith({forbidden!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
