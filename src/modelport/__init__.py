"""modelport: deploy and serve machine-learning models over the Open Inference Protocol.

``import modelport`` loads no ML framework; runtimes import theirs when a model is loaded.
"""

from __future__ import annotations

from modelport.core.datatypes import Datatype
from modelport.core.errors import ModelportError
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
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
