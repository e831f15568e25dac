"""Shared fixtures: one real Redis server per test session and a fresh bus per test; a Redis of a module's or a
test's own where the code under test reads everything in its Redis or the test stops it; the session's prebuilt
models (tests/prebuild.py), started once the tests are collected, and the tests that need them run last; the long
tests that mostly wait on real time (marker ``beside``) run in a second process beside the others (tests/beside.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from common.bus import Backoff, Bus
from common.liveness import IngestLiveness
from common.messages import Consent, Frame, Obs, SessionInfo
from common.session_store import Retention, SessionStore
from common.streams import FRAMES, OBS
from common.tasks import stop_tasks
from infra.redis_server import RedisServer
from ingest.sessions import IngestSessions
from tests.beside import Beside, in_child
from tests.prebuild import FINISH_ORDER, Prebuilds

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long", action="store_true", default=False,
        help="long runs: every fuzz target gets at least 10,000 inputs (README, Fuzzing)",
    )  # fmt: skip
    parser.addoption(
        "--serial", action="store_true", default=False,
        help="run the tests marked beside in this process too, not in a second one (tests/beside.py)",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    from tests.fuzz_kit import LONG_EXAMPLES, SHORT_EXAMPLES

    common = {"deadline": None, "database": None, "print_blob": False,
              "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                        HealthCheck.data_too_large, HealthCheck.filter_too_much]}  # fmt: skip
    hypothesis_settings.register_profile("feqa-short", max_examples=SHORT_EXAMPLES, **common)
    hypothesis_settings.register_profile("feqa-long", max_examples=LONG_EXAMPLES, **common)
    hypothesis_settings.load_profile("feqa-long" if config.getoption("--long") else "feqa-short")


_PREBUILDS = pytest.StashKey[Prebuilds]()
_BESIDE = pytest.StashKey[Beside]()


def _prebuilds(config: pytest.Config) -> Prebuilds:
    if _PREBUILDS not in config.stash:
        config.stash[_PREBUILDS] = Prebuilds()
    return config.stash[_PREBUILDS]


def _builds_of(item: pytest.Item) -> set[str]:
    return {name for mark in item.iter_markers("prebuilt") for name in mark.args}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the tests marked ``beside`` in a second process when the run holds others too (they then only report
    its verdicts here, after all others), and the builds the other selected tests need, and run those tests after
    all others (the builds that usually finish first come first), so the builds have the rest of the run on the
    core it leaves idle."""
    collect_only = config.getoption("collectonly")
    beside = [item.nodeid for item in items if item.get_closest_marker("beside") is not None]
    if beside and len(beside) < len(items) and not (collect_only or config.getoption("--serial") or in_child()):
        config.stash[_BESIDE] = Beside(beside)
    elsewhere = set(beside) if _BESIDE in config.stash else set()
    needs = {item.nodeid: _builds_of(item) for item in items if item.nodeid not in elsewhere}
    wanted = sorted(set().union(*needs.values()), key=FINISH_ORDER.index)
    if wanted and not collect_only:
        _prebuilds(config).start(wanted)

    def order(item: pytest.Item) -> tuple[int, int]:
        if item.nodeid in elsewhere:
            return 1 + len(FINISH_ORDER), 0
        names = needs[item.nodeid]
        if names:
            return 1 + max(FINISH_ORDER.index(n) for n in names), 0
        # while tests run beside, the unit tests (no real time to keep) come first: the integration tests' patients,
        # streams and leases share the CPU with the second process's as little as the run allows
        return 0, 0 if elsewhere and item.nodeid.startswith("tests/unit/") else 1

    items.sort(key=order)  # stable: the original order within each group


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test run in the second process (tests/beside.py) reports that process's verdict on it instead of running."""
    config = pyfuncitem.config
    if _BESIDE not in config.stash or pyfuncitem.get_closest_marker("beside") is None:
        return None
    outcome, text = config.stash[_BESIDE].verdict(pyfuncitem.nodeid, timeout_s=2400)
    if outcome == "failed":
        pytest.fail(f"in the second process (tests/beside.py):\n{text}", pytrace=False)
    if outcome == "skipped":
        pytest.skip(text)
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Each build's time and the tests' waits for it, beside the slowest tests (where CI's time goes)."""
    if _PREBUILDS in config.stash and config.stash[_PREBUILDS].started:
        terminalreporter.write_sep("=", "prebuilt builds (tests/prebuild.py)")
        for line in config.stash[_PREBUILDS].summary():
            terminalreporter.write_line(line)
    if _BESIDE in config.stash:
        terminalreporter.write_sep("=", "tests run beside (tests/beside.py)")
        for line in config.stash[_BESIDE].summary():
            terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREBUILDS in config.stash:
        config.stash[_PREBUILDS].close()
    if _BESIDE in config.stash:
        config.stash[_BESIDE].close()


@pytest.fixture(scope="session")
def prebuilt(request: pytest.FixtureRequest) -> Prebuilds:
    """The session's builds (tests/prebuild.py): ``prebuilt.wait(name)`` is a finished build's folder. A test using
    one names it with ``@pytest.mark.prebuilt(name)`` so that it starts as soon as the tests are collected."""
    return _prebuilds(request.config)


@pytest.fixture(scope="session")
def random_artifact(prebuilt: Prebuilds) -> Path:
    """The random-weight micro pfed5/smile artifact (25 fps, seed 0) the scorer tests share, exported by the build
    ``random-artifact`` (tests/model_artifacts.py); a test using it is marked ``@pytest.mark.prebuilt(
    "random-artifact")``. Copy it (``copy_artifact``) rather than change it."""
    from tests.model_artifacts import prebuilt_random_artifact

    return prebuilt_random_artifact(prebuilt.wait("random-artifact", timeout_s=600))


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """Whether ``--long`` was given (fuzz targets then get at least 10,000 inputs each)."""
    return bool(request.config.getoption("--long"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 for the whole test session."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_of_its_own() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 that only its holder uses (stopped by its PID afterwards)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """A Redis of the test module's own, shared by its tests: for tests of code that reads everything in its Redis
    (every session, the one dead-letter stream), so other modules' keys stay out. Tests still use fresh ``sid``s."""
    with redis_of_its_own() as server:
        yield server


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own: for tests that stop it (a service whose Redis is gone) or need it empty."""
    with redis_of_its_own() as server:
        yield server


TEST_BACKOFF = Backoff(first_s=0.02, cap_s=0.5, budget_s=15)

# The ingest's service credential in tests (the ingest refuses to start without one), and the header carrying it.
SERVICE_KEY = "test-service-key-0123456789abcdef"
SERVICE_HEADERS = {"X-Api-Key": SERVICE_KEY}


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
async def module_bus(module_redis: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """A bus connected to the module's own Redis (:func:`module_redis`), its client named for the test module."""
    async for b in open_bus(module_redis.url, _client_name(request)):
        yield b


@pytest.fixture
async def private_bus(private_redis: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """A bus connected to the test's own Redis (:func:`private_redis`)."""
    async for b in open_bus(private_redis.url, _client_name(request)):
        yield b


def _client_name(request: pytest.FixtureRequest) -> str:
    return request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")


@pytest.fixture
def sid() -> str:
    """A fresh session id, so tests sharing one Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


async def live_session(
    bus: Bus,
    sid: str,
    *,
    protocol: str = "pfed5",
    phantom: str = "",
    fps: float = 30.0,
    consent: Consent | None = None,
    ingest_ttl_ms: int = 120_000,
) -> SessionInfo:
    """Create and start a session as an ingest would: hash, ingest lease (held by "test-ingest"), live, announced."""
    info = SessionInfo(sid=sid, patient_id="p-" + sid, protocol=protocol, consent=consent or Consent(live_scoring=True),
                       state="created", source="webrtc", fps=fps, created_ts=time.time(), phantom=phantom)  # fmt: skip
    store = SessionStore(bus)
    await store.create(info)
    await IngestLiveness(bus, "test-ingest", ingest_ttl_ms).claim(sid)
    await store.start(sid, protocol)
    found = await store.get(sid)
    if found is None:
        raise AssertionError(f"session {sid} vanished right after it started")
    return found


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


def ingest_sessions(bus: Bus, owner: str = "test-ingest", ttl_ms: int = 120_000) -> IngestSessions:
    """The ingest's session lifecycle with its own liveness (leases renewed only when a test asks)."""
    return IngestSessions(bus, Retention(), IngestLiveness(bus, owner, ttl_ms))


async def session_of(bus: Bus, sid: str) -> SessionInfo:
    """The session's SessionInfo (fails when it does not exist)."""
    return await SessionStore(bus).require(sid)


class FrameTap:
    """Reads a session's frames in the tracker's group while it runs, as the tracker would (frames are deleted when
    the session ends, so tests that count them must read them live). With ``observe`` set it also answers each
    frame with an observation (face or not), as a tracker would, for tests of what the ingest makes of them."""

    def __init__(self, bus: Bus, sid: str, delay_s: float = 0.0, observe: bool | None = None) -> None:
        self.bus, self.sid, self.delay_s, self.observe = bus, sid, delay_s, observe
        self.frames: list[Frame] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FrameTap:
        await self.bus.ensure_group(FRAMES, self.sid)
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batch = await self.bus.consume(FRAMES, [self.sid], "tap", count=8, block_ms=50)
            self.frames.extend(d.message for d in batch)
            if self.observe is not None and batch:
                await self.bus.publish_many(OBS, [Obs(sid=self.sid, seq=d.message.seq, capture_ts=d.message.capture_ts,
                                                      frame_w=d.message.width, frame_h=d.message.height,
                                                      face=self.observe, reason="" if self.observe else "no_face")
                                                  for d in batch])  # fmt: skip
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            await self.bus.ack(batch)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await stop_tasks([self._task], what="frame tap")


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


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Whatever a test (or `feqa demo` run in-process) puts in os.environ is gone before the next test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
