"""Helpers for tests of modelport and of users' own code that calls a modelport server."""

from __future__ import annotations

from modelport.testing.clock import FakeClock
from modelport.testing.server import ServerProcess

__all__ = ["FakeClock", "ServerProcess"]
