"""modelport: deploy and serve machine-learning models over the Open Inference Protocol.

``import modelport`` loads no ML framework (runtimes import theirs when a model is loaded), and
not even numpy: the public names below are imported on first use, so a command line that needs
none of them (``modelport --help``) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelport.core.datatypes import Datatype
    from modelport.core.errors import ModelportError
    from modelport.core.inference import (
        InferenceRequest,
        InferenceResponse,
        RequestedOutput,
        Tensor,
    )
    from modelport.core.refs import ModelRef
    from modelport.core.signature import Signature, TensorSpec

__all__ = [
    "Datatype",
    "InferenceRequest",
    "InferenceResponse",
    "ModelRef",
    "ModelportError",
    "RequestedOutput",
    "Signature",
    "Tensor",
    "TensorSpec",
    "__version__",
]

__version__ = "0.1.0"

_HOMES = {
    "Datatype": "modelport.core.datatypes",
    "ModelportError": "modelport.core.errors",
    "InferenceRequest": "modelport.core.inference",
    "InferenceResponse": "modelport.core.inference",
    "RequestedOutput": "modelport.core.inference",
    "Tensor": "modelport.core.inference",
    "ModelRef": "modelport.core.refs",
    "Signature": "modelport.core.signature",
    "TensorSpec": "modelport.core.signature",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
