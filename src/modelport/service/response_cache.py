"""The response cache of a deployment (memory backend): LRU, bounded in entries, bytes and age.

A cached answer is found by a key made of the **served model version** and the **canonical
request**, so one version's answer is never served for another: when a variant moves to a new
version (an alias move, a new deployment generation), its requests make new keys, and the old
entries age out. The canonical form of a JSON inference request is its document without the
request ``id`` (each caller's own, echoed in the answer: the gateway puts the caller's id back
into a cached answer) with keys sorted; binary requests are keyed by their exact bytes.

The memory cache is used from one event loop (no locks); each gateway process keeps its own.
:class:`RedisCache` is shared by every gateway replica (``spec.cache.backend: redis``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInput

__all__ = [
    "AnswerCache",
    "CacheStats",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "cache_key",
    "canonical_request",
]

log = logging.getLogger("modelport.gateway")

_WARN_EVERY_S: Final = 60.0


def canonical_request(document: dict[str, Any]) -> bytes:
    """A JSON inference request as the cache compares it: without ``id``, keys sorted.

    Raises:
        InvalidInput: The document holds something JSON cannot carry.
    """
    body = {key: value for key, value in document.items() if key != "id"}
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise InvalidInput(f"the request cannot be encoded as JSON: {exc}") from None


def cache_key(model: str, version: str, request: bytes) -> bytes:
    """The key of ``request`` (canonical JSON, or a binary request's bytes) to ``model@version``."""
    digest = hashlib.blake2b(digest_size=32)
    for part in (model.encode(), version.encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    digest.update(request)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counts since the cache was made, and what it holds now."""

    hits: int
    misses: int
    evictions: int
    expirations: int
    entries: int
    bytes: int


class ResponseCache:
    """An LRU of encoded answers, bounded by count, total size and age.

    Args:
        max_entries: Most answers kept.
        max_bytes: Most bytes of answers kept (an answer larger than this is not kept at all).
        ttl_s: Seconds an answer may be served after it was stored.
        clock: Its monotonic time is what ages entries.

    Raises:
        InvalidInput: A limit is not positive.
    """

    def __init__(self, max_entries: int, max_bytes: int, ttl_s: float, clock: Clock) -> None:
        if max_entries < 1 or max_bytes < 1 or not ttl_s > 0:
            raise InvalidInput("cache limits must be positive (entries, bytes, ttl)")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        """Key -> (expiry on the monotonic clock, answer), least recently used first."""
        self._bytes = 0
        self._hits = self._misses = self._evictions = self._expirations = 0

    def get(self, key: bytes) -> bytes | None:
        """The answer stored under ``key`` if it is still fresh, else ``None`` (a miss)."""
        found = self._entries.get(key)
        if found is None:
            self._misses += 1
            return None
        expires, answer = found
        if self._clock.monotonic() >= expires:
            self._drop(key, answer)
            self._expirations += 1
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return answer

    def put(self, key: bytes, answer: bytes) -> None:
        """Store ``answer`` under ``key``, evicting the least recently used beyond the limits."""
        if len(answer) > self._max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        self._entries[key] = (self._clock.monotonic() + self._ttl_s, answer)
        self._bytes += len(answer)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
            self._evictions += 1

    def clear(self) -> None:
        """Forget every answer (the counts stay)."""
        self._entries.clear()
        self._bytes = 0

    def stats(self) -> CacheStats:
        """Hits, misses, evictions and expirations so far; entries and bytes held now."""
        return CacheStats(
            self._hits,
            self._misses,
            self._evictions,
            self._expirations,
            len(self._entries),
            self._bytes,
        )

    def _drop(self, key: bytes, answer: bytes) -> None:
        del self._entries[key]
        self._bytes -= len(answer)


class AnswerCache(Protocol):
    """A deployment's response cache as the gateway uses it: memory or Redis."""

    async def get(self, key: bytes) -> bytes | None:
        """The fresh answer stored under ``key``, or ``None``."""
        ...

    def put(self, key: bytes, answer: bytes) -> None:
        """Store ``answer`` under ``key`` (without holding the caller)."""
        ...


class MemoryCache:
    """A :class:`ResponseCache` of this process, behind :class:`AnswerCache`.

    Args:
        cache: The LRU.
    """

    def __init__(self, cache: ResponseCache) -> None:
        self.lru = cache

    async def get(self, key: bytes) -> bytes | None:
        """The answer if it is fresh."""
        return self.lru.get(key)

    def put(self, key: bytes, answer: bytes) -> None:
        """Store the answer."""
        self.lru.put(key, answer)


class RedisCache:
    """A response cache in Redis, shared by every gateway replica.

    Each answer is one Redis string under ``NAMESPACE`` and the key's hex digest, with the TTL as
    its expiry (``SET ... PX``), so Redis ages entries out; what Redis keeps at most is its own
    ``maxmemory`` and eviction policy (``allkeys-lru`` suits a cache). Storing runs as a task of
    its own, off the caller's path. Redis being down or slow never fails a request: a failed read
    is a miss and a failed write is skipped, each counted, with one warning a minute.

    Args:
        client: A ``redis.asyncio.Redis`` client (shared by the deployments of a process).
        namespace: Prefix of this deployment's keys (``modelport:cache:fraud:``).
        ttl_s: Seconds an answer may be served.
        max_answer_bytes: Answers larger than this are not stored.
    """

    def __init__(self, client: Any, namespace: str, ttl_s: float, max_answer_bytes: int) -> None:
        self._client = client
        self._namespace = namespace.encode()
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._max = max_answer_bytes
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors = 0
        self._warned_at = -_WARN_EVERY_S

    async def get(self, key: bytes) -> bytes | None:
        """The answer if Redis has it (a Redis failure is a miss)."""
        try:
            found: bytes | None = await self._client.get(self._namespace + key.hex().encode())
        except Exception as exc:  # noqa: BLE001 - redis raises its own and OS errors
            self._failed("read", exc)
            return None
        return found

    def put(self, key: bytes, answer: bytes) -> None:
        """Store the answer in a task of its own."""
        if len(answer) > self._max:
            return
        task = asyncio.create_task(self._put(key, answer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, key: bytes, answer: bytes) -> None:
        try:
            await self._client.set(self._namespace + key.hex().encode(), answer, px=self._ttl_ms)
        except Exception as exc:  # noqa: BLE001 - redis raises its own and OS errors
            self._failed("write", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "response cache: cannot %s Redis (%s); answering without the cache "
                "(%d failures so far)",
                what,
                exc,
                self.errors,
            )
