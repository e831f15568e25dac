"""Shared fixtures: one real Redis server per test session, and a fresh bus per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from common.bus import Backoff, Bus
from infra.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 for the whole test session."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


TEST_BACKOFF = Backoff(first_s=0.02, cap_s=0.5, budget_s=15)


async def open_bus(url: str, name: str = "test") -> AsyncIterator[Bus]:
    """Body of every bus fixture: connect with a short reconnect budget, close afterwards."""
    b = await Bus.connect(url, name=name, backoff=TEST_BACKOFF)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def bus(redis_server: RedisServer) -> AsyncIterator[Bus]:
    """A bus connected to the session's Redis."""
    async for b in open_bus(redis_server.url):
        yield b


@pytest.fixture
def sid() -> str:
    """A fresh session id, so tests sharing one Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]
