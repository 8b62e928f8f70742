"""Whether a deployment's replicas answer, asked over HTTP before the deployment is applied.

:class:`HttpReplicaProbe` is the :class:`~modelport.service.deployments.ReplicaProbe` of the
control plane and of ``modelport apply``: every replica URL must answer ``GET /v2/health/live``
with 200, and every ``replicas.dns`` name (``HOST:PORT``) must resolve. All of them are asked at
once, each in a thread of its own, and the whole check takes at most about the timeout: a
replica still silent then is reported as not answering (its thread is left to finish alone).
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import httpx

from modelport.core.settings import Settings

__all__ = ["HttpReplicaProbe"]

LIVE_PATH: Final = "/v2/health/live"


class HttpReplicaProbe:
    """Asks each replica URL for ``/v2/health/live`` and resolves each DNS name.

    Args:
        timeout_s: Seconds each replica has to answer (connect, send, read) or each name to
            resolve.
        headers: Sent with every probe (an ``Authorization`` for replicas whose probes are
            closed).
    """

    def __init__(self, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None) -> None:
        self._timeout = timeout_s
        self._headers = dict(headers or {})

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpReplicaProbe:
        """The probe ``settings`` describe.

        Its timeout is ``controlplane.replica_timeout_s``; it presents the key the gateway
        presents to replicas (``gateway.upstream_key``), if one is set.
        """
        key = settings.gateway.upstream_key
        headers = {"authorization": f"Bearer {key.get_secret_value()}"} if key else None
        return cls(settings.controlplane.replica_timeout_s, headers)

    def unreachable(self, urls: Sequence[str], dns: Sequence[str]) -> dict[str, str]:
        """Return why each URL or ``HOST:PORT`` name that does not answer fails.

        Args:
            urls: Replica base URLs (``http://10.0.0.5:8080``).
            dns: ``HOST:PORT`` names.

        Returns:
            The failing ones, each with a short reason; ``{}`` when all answer.
        """
        checks: dict[str, Callable[[], str | None]] = {}
        for url in urls:
            checks[url] = functools.partial(self._live, url)
        for name in dns:
            checks[name] = functools.partial(self._resolves, name)
        results: dict[str, str | None] = {}
        threads = [
            threading.Thread(
                target=_record, args=(results, target, check), name="modelport-probe", daemon=True
            )
            for target, check in checks.items()
        ]
        for thread in threads:
            thread.start()
        # Every check bounds its own time; the margin covers the threads' start and teardown.
        deadline = time.monotonic() + self._timeout + 0.5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        failed: dict[str, str] = {}
        for target in checks:
            if target not in results:
                failed[target] = f"no answer within {self._timeout:g} s"
            elif (reason := results[target]) is not None:
                failed[target] = reason
        return failed

    def _live(self, url: str) -> str | None:
        probe = url.rstrip("/") + LIVE_PATH
        try:
            response = httpx.get(
                probe, headers=self._headers, timeout=self._timeout, follow_redirects=False
            )
        except httpx.TimeoutException:
            return f"GET {probe}: no answer within {self._timeout:g} s"
        except httpx.ConnectError as exc:
            return f"GET {probe}: cannot connect ({exc or type(exc).__name__})"
        except httpx.HTTPError as exc:
            return f"GET {probe}: {exc or type(exc).__name__}"
        if response.status_code != 200:
            return f"GET {probe} answered {response.status_code}, expected 200"
        return None

    def _resolves(self, name: str) -> str | None:
        host, _, port = name.rpartition(":")
        try:
            socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
            return f"{host!r} does not resolve ({reason})"
        return None


def _record(results: dict[str, str | None], target: str, check: Callable[[], str | None]) -> None:
    try:
        results[target] = check()
    except Exception as exc:  # a probe must report, never raise into the caller's thread
        results[target] = f"cannot be checked: {type(exc).__name__}: {exc}"
