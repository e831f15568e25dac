"""Shared fixtures: one real Redis server per test session, and a fresh bus per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from common.bus import Backoff, Bus
from infra.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def mediapipe_dir() -> Path:
    """The MediaPipe face models fetched by ``infra/setup.sh`` (``feqa tracker fetch-models``) into models/mediapipe.

    The default landmarker needs them, so a checkout without them fails here with what to run, instead of skipping."""
    from tracker.mediapipe.convert import CONVERTER_VERSION
    from tracker.mediapipe.models import is_complete

    directory = ROOT / "models" / "mediapipe"
    if not is_complete(directory, CONVERTER_VERSION):
        pytest.fail(f"MediaPipe face models missing or stale in {directory}: run `feqa tracker fetch-models`")
    return directory
