"""The REST API's OpenAPI description, served at ``/v2/openapi.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3 document describing every REST route."""
    return {"openapi": "3.0.3", "info": {"title": "modelport", "version": "0.1.0"}, "paths": {}}
