"""Online feature stores: the newest row per entity and view, read with a TTL in well under 1 ms.

Backends: ``sqlite`` (embedded, the default) and ``redis``, behind :class:`OnlineStore` and
opened by :func:`open_online_store` from their typed configs. Importing this package imports
neither backend's module (nor ``redis``).
"""

from __future__ import annotations

from modelport.features.online.base import (
    ONLINE_STORES,
    EntityKey,
    FeatureStatus,
    OnlineRead,
    OnlineStore,
    OnlineStoreConfig,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    online_store_class,
    open_online_store,
)

__all__ = [
    "ONLINE_STORES",
    "EntityKey",
    "FeatureStatus",
    "OnlineRead",
    "OnlineStore",
    "OnlineStoreConfig",
    "RedisOnlineStoreConfig",
    "SqliteOnlineStoreConfig",
    "online_store_class",
    "open_online_store",
]
