"""The response cache in Redis: shared by gateway replicas, aged by Redis, never a failure.

Talks to the real Redis on 127.0.0.1:6379 (``.ci/run`` starts it).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from modelport.service.response_cache import RedisCache

URL = "redis://127.0.0.1:6379/0"


def namespace() -> str:
    return f"modelport:test:{uuid.uuid4().hex}:"


async def settle() -> None:
    await asyncio.sleep(0.05)  # puts run as tasks of their own


def test_an_answer_stored_by_one_gateway_is_read_by_another() -> None:
    async def run() -> None:
        one, two = aioredis.from_url(URL), aioredis.from_url(URL)
        where = namespace()
        first, second = RedisCache(one, where, 60, 1 << 20), RedisCache(two, where, 60, 1 << 20)
        assert await second.get(b"k") is None
        first.put(b"k", b"answer")
        await settle()
        assert await second.get(b"k") == b"answer"
        assert await RedisCache(two, namespace(), 60, 1 << 20).get(b"k") is None  # other deployment
        await one.aclose()
        await two.aclose()

    asyncio.run(run())


def test_redis_ages_answers_out_and_large_answers_are_not_stored() -> None:
    async def run() -> None:
        client = aioredis.from_url(URL)
        cache = RedisCache(client, namespace(), 0.2, 10)
        cache.put(b"k", b"short")
        cache.put(b"big", b"x" * 11)
        await settle()
        assert await cache.get(b"k") == b"short"
        assert await cache.get(b"big") is None
        await asyncio.sleep(0.3)
        assert await cache.get(b"k") is None
        await client.aclose()

    asyncio.run(run())


def test_redis_down_is_a_counted_miss_never_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        cache = RedisCache(client, namespace(), 60, 1 << 20)
        assert await cache.get(b"k") is None
        cache.put(b"k", b"answer")
        await settle()
        assert await cache.get(b"k") is None
        assert cache.errors == 3
        await client.aclose()

    asyncio.run(run())
    warnings = [r for r in caplog.records if "cannot read Redis" in r.getMessage()]
    assert len(warnings) == 1  # once a minute, not per request
