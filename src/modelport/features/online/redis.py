"""The shared online store: one Redis string per (view, entity).

Key: ``prefix + json(view) + ":" + json(entity key)``; the JSON string of the view ends at its
closing quote, so no view's keys can be mistaken for another's. Value: a 40-byte header (event
and created timestamps, each as 20 zero-padded decimal digits of microseconds plus 10**17, so
comparing headers as strings compares ``(event, created)``) followed by the orjson bytes of the
row's features.

A write runs one Lua script per batch of rows: for each row, ``GETRANGE 0 39`` of the stored
value and ``SET`` only when the new header is greater, so the newer-row test and the update are
atomic against every other client. A read is one ``MGET`` of every key asked for.

The Lua script touches many keys, so on Redis Cluster every key of a batch would need the same
slot; this backend targets one server (or a proxy that runs scripts), which is what it is tested
against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

import orjson
import redis

from modelport.core.errors import ConfigError, ServiceUnavailable
from modelport.features.online import _codec
from modelport.features.online.base import (
    EntityKey,
    OnlineRead,
    OnlineStore,
    RedisOnlineStoreConfig,
)

__all__ = ["RedisOnlineStore"]

_OFFSET: Final = 10**17  # makes every datetime's microseconds (>= -6.3e16) non-negative
_HEAD: Final = 40

_NEWEST_WINS: Final = """
local applied = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local old = redis.call('GETRANGE', KEYS[i], 0, 39)
  if old == '' or string.sub(new, 1, 40) > old then
    redis.call('SET', KEYS[i], new)
    applied = applied + 1
  end
end
return applied
"""

_GLOB_SPECIAL: Final = frozenset(b"*?[]\\")


def _glob_escape(raw: bytes) -> bytes:
    return bytes(b for c in raw for b in ((92, c) if c in _GLOB_SPECIAL else (c,)))


def _header(event_us: int, created_us: int) -> bytes:
    return b"%020d%020d" % (event_us + _OFFSET, created_us + _OFFSET)


class RedisOnlineStore(OnlineStore):
    """Online store on a Redis server.

    Args:
        config: The server URL, key prefix, socket timeout and write batch size.

    Raises:
        ConfigError: The URL is not a Redis URL.
        ServiceUnavailable: The server does not answer a PING.
    """

    def __init__(self, config: RedisOnlineStoreConfig) -> None:
        self._config = config
        self._prefix = config.prefix.encode()
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                config.url,
                socket_timeout=config.socket_timeout_s,
                socket_connect_timeout=config.socket_timeout_s,
            )
        except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
            raise ConfigError(f"bad online store URL {config.url!r}: {exc}") from None
        self._script = self._client.register_script(_NEWEST_WINS)
        try:
            self._client.ping()
        except redis.RedisError as exc:
            self._client.close()
            raise ServiceUnavailable(
                f"cannot reach the online store at {config.url}: {exc}"
            ) from None

    def _view_prefix(self, view: str) -> bytes:
        return self._prefix + orjson.dumps(view) + b":"

    def write(
        self,
        view: str,
        keys: Sequence[EntityKey],
        event_ts: Sequence[datetime],
        created_ts: Sequence[datetime | None],
        values: Mapping[str, Sequence[Any]],
    ) -> int:
        """See :meth:`OnlineStore.write`."""
        rows = _codec.rows_to_write(view, keys, event_ts, created_ts, values)
        head = self._view_prefix(view)
        batch = self._config.write_batch
        applied = 0
        try:
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                applied += int(
                    self._script(
                        keys=[head + r.key for r in chunk],
                        args=[_header(r.event_us, r.created_us) + r.data for r in chunk],
                    )
                )
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"online store write failed: {exc}") from None
        return applied

    def read(
        self,
        view: str,
        keys: Sequence[EntityKey],
        features: Sequence[str],
        now: datetime,
        ttl: timedelta | None,
    ) -> OnlineRead:
        """See :meth:`OnlineStore.read`."""
        encoded, ttl_us = _codec.check_read(view, keys, features, ttl)
        head = self._view_prefix(view)
        raw: list[bytes | None] = []
        if encoded:
            try:
                raw = cast(list[bytes | None], self._client.mget([head + key for key in encoded]))
            except redis.RedisError as exc:
                raise ServiceUnavailable(f"online store read failed: {exc}") from None
        records: list[tuple[int, dict[str, Any]] | None] = [
            None
            if value is None
            else (int(value[:20]) - _OFFSET, orjson.loads(memoryview(value)[_HEAD:]))
            for value in raw
        ]
        return _codec.build_read(features, records, _codec.to_micros(now), ttl_us)

    def delete_view(self, view: str) -> int:
        """See :meth:`OnlineStore.delete_view`."""
        _codec.check_view(view)
        pattern = _glob_escape(self._view_prefix(view)) + b"*"
        deleted = 0
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += cast(int, self._client.unlink(*batch))
                    batch = []
            if batch:
                deleted += cast(int, self._client.unlink(*batch))
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"online store delete failed: {exc}") from None
        return deleted

    def close(self) -> None:
        """See :meth:`OnlineStore.close`."""
        self._client.close()
