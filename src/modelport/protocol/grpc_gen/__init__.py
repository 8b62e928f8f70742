"""Generated gRPC modules of the Open Inference Protocol; regenerate them with ``scripts/gen-grpc``.

- ``inference_pb2``: the messages (held in a descriptor pool of their own, so that they can share
  a process with other copies of the protocol such as tritonclient's).
- ``inference_pb2_grpc``: the service stub and servicer base; it imports ``grpc``, so only
  ``modelport.server.grpc`` imports it.

Nothing is imported here, so importing this package never imports ``grpc``.
"""

from __future__ import annotations

__all__: list[str] = []
