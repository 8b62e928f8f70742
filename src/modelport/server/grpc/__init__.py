"""The Open Inference Protocol over gRPC: service, status codes and server factory.

- ``server``: :func:`create_grpc_server`, the grpc.aio server the serve command starts.
- ``servicer``: ``inference.GRPCInferenceService`` over the data plane.
- ``errors``: error kinds -> gRPC status codes.
"""

from __future__ import annotations

from modelport.server.grpc.server import create_grpc_server
from modelport.server.grpc.servicer import InferenceServicer

__all__ = ["InferenceServicer", "create_grpc_server"]
