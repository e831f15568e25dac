"""HTTP upload on a real Redis with the real tracker worker (a blob landmarker: a bright disc on black is a face):
the body is cut at its limit while it streams, bad uploads get a clear 4xx, and every accepted upload ends with a
reason the caller reads back (completed, no_face, not_tracked)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from common.bus import Bus
from common.messages import Consent
from common.settings import CommonSettings
from common.streams import FRAMES
from infra.redis_server import RedisServer
from ingest.app import create_app
from ingest.settings import IngestSettings
from tests.conftest import SERVICE_HEADERS, SERVICE_KEY
from tracker.landmarkers import LandmarkerChoice
from tracker.settings import TrackerSettings
from tracker.testing.blob_landmarker import BlobLandmarker
from tracker.worker import TrackerWorker

pytestmark = pytest.mark.integration


def blob_clip(path: Path, n: int, bright: bool, size: tuple[int, int] = (320, 240)) -> Path:
    """A clip of a bright moving disc on black (``bright``), or of a dark frame with nothing in it."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            if bright:
                cv2.circle(img, (120 + i, 120), 50, (240, 230, 220), -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@contextlib.asynccontextmanager
async def uploader(
    redis_url: str, bus: Bus, tracker: bool, **kw: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    # With a tracker beside it, the fast pace may wait for it as long as a loaded machine needs (a lease of a few
    # seconds too: at 1 s a late renewal lost and retook the session over and over); without one, 2 s end it
    # not_tracked soon.
    wait_s = 15.0 if tracker else 2.0
    settings = IngestSettings(common=CommonSettings(redis_url=redis_url), api_key=SERVICE_KEY, tracker_wait_s=wait_s,
                              **kw)  # fmt: skip
    app = create_app(settings)
    stop = asyncio.Event()
    worker_task = None
    if tracker:
        tsettings = TrackerSettings(block_ms=10, lease_ttl_ms=5000)
        worker = TrackerWorker(tsettings, bus, LandmarkerChoice("insightface", BlobLandmarker(), None))  # type: ignore[arg-type]
        worker_task = asyncio.ensure_future(worker.run(stop))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=SERVICE_HEADERS,
                                         timeout=30) as http:  # fmt: skip
                yield http, app
    finally:
        stop.set()
        if worker_task is not None:
            await asyncio.wait_for(worker_task, 10)


async def finished(http: httpx.AsyncClient, app: FastAPI, res: httpx.Response) -> dict[str, Any]:
    """The session of an accepted upload once its job is done, read back as the caller would."""
    assert res.status_code == 202, res.text
    body = res.json()
    job = app.state.ingest.registry.job(body["sid"])
    if job is not None:
        await asyncio.wait_for(job, 30)
    status = await http.get(body["status_url"])
    assert status.status_code == 200
    info: dict[str, Any] = status.json()
    return info


async def test_uploads_end_with_the_reason_the_caller_sees(redis_server: RedisServer, bus: Bus, tmp_path: Path) -> None:
    face = blob_clip(tmp_path / "face.webm", 30, bright=True).read_bytes()
    dark = blob_clip(tmp_path / "dark.webm", 30, bright=False).read_bytes()
    form = {"protocol": "neuroface", "task": "kiss", "pace": "fast", "patient_id": "pt-1"}
    async with uploader(redis_server.url, bus, tracker=True) as (http, app):
        ok = await finished(http, app, await http.post("/api/uploads", data=form, files={"file": ("f.webm", face)}))
        none = await finished(http, app, await http.post("/api/uploads", data=form, files={"file": ("d.webm", dark)}))
        health = await app.state.ingest.health.publish()  # the uploads' frames are in the ingest's health figures
        assert (health.service, health.counters["frames_published"], health.gauges["sessions"]) == ("ingest", 60, 0)
        assert health.counters["frames_dropped_busy"] == 0 and health.gauges["latency_p99_ms"] > 0
    assert (ok["state"], ok["end_reason"], ok["source"]) == ("ended", "completed", "file")
    assert ok["stats"]["frames"] == 30 and ok["stats"]["observed"] == 30 and ok["stats"]["faces"] >= 25
    assert ok["consent"] == Consent(live_scoring=True).as_dict() and ok["patient_id"] == "pt-1"
    assert (none["end_reason"], none["stats"]["observed"], none["stats"]["faces"]) == ("no_face", 30, 0)
    assert await bus.length(FRAMES, ok["sid"]) == 0
    assert list(Path(tempfile.gettempdir()).glob("feqa-upload-*")) == []


async def test_an_upload_nobody_tracks_says_so(redis_server: RedisServer, bus: Bus, tmp_path: Path) -> None:
    clip = blob_clip(tmp_path / "face.webm", 20, bright=True).read_bytes()
    async with uploader(redis_server.url, bus, tracker=False) as (http, app):
        res = await http.post("/api/uploads", data={"protocol": "pfed5"}, files={"file": ("f.webm", clip)})
        info = await finished(http, app, res)
    assert (info["end_reason"], info["stats"]["observed"]) == ("not_tracked", 0)


async def test_bad_uploads_get_a_clear_4xx(redis_server: RedisServer, bus: Bus, tmp_path: Path) -> None:
    one = blob_clip(tmp_path / "one.webm", 1, bright=True).read_bytes()
    good = blob_clip(tmp_path / "good.webm", 20, bright=True).read_bytes()
    form = {"protocol": "neuroface", "task": "kiss"}
    async with uploader(redis_server.url, bus, tracker=False, max_upload_bytes=200_000, rate_uploads_per_min=600) as (
        http,
        app,
    ):

        async def post(data: dict[str, str], files: Any, **kw: Any) -> httpx.Response:
            return await http.post("/api/uploads", data=data, files=files, **kw)

        r = await post(form, {"file": ("one.webm", one)})
        assert r.status_code == 422 and "one.webm has 1 video frame; at least 16" in r.json()["detail"]
        r = await post(form, {"file": ("x.webm", b"not video" * 99)})
        assert r.status_code == 422 and "x.webm is not a readable video" in r.json()["detail"]
        r = await post(form, {"file": ("h.webm", b"\x00" * 300_000)})
        assert r.status_code == 413 and "limit of 200000" in r.json()["detail"]
        r = await post({**form, "task": "smile"}, {"file": ("u.webm", good)})
        assert r.status_code == 400 and "no task 'smile'" in r.json()["detail"]
        r = await post({**form, "patient_id": "bad id!" * 50}, {"file": ("u.webm", good)})
        assert r.status_code == 422 and "patient_id" in r.json()["detail"] and "bad id!" not in r.json()["detail"]
        r = await post({**form, "colour": "blue"}, {"file": ("u.webm", good)})
        assert r.status_code == 422 and "colour" in r.json()["detail"]
        r = await post(form, None)
        assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
        r = await post({"protocol": "pfed5"}, {"other": ("u.webm", good)})
        assert r.status_code == 400 and "other" in r.json()["detail"]  # the file field has the wrong name
        r = await post(form, {"file": ("u.webm", good)}, headers={"X-Api-Key": "wrong-key-0123456789abcdef"})
        assert r.status_code == 401
        cut = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.webm"\r\n\r\n' + good[:500]
        r = await http.post("/api/uploads", content=cut, headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
        assert r.status_code == 400 and "closing boundary" in r.json()["detail"]
        assert len(app.state.ingest.registry) == 0
    assert list(Path(tempfile.gettempdir()).glob("feqa-upload-*")) == []


async def test_an_oversized_upload_is_cut_while_it_streams(redis_server: RedisServer, bus: Bus) -> None:
    """No Content-Length, 50 MB sent in chunks to a 1 MB limit: refused after about the limit, never spooled."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.webm"\r\n\r\n'
        for _ in range(800):
            sent += 65_536
            yield b"\x01" * 65_536

    async with uploader(redis_server.url, bus, tracker=False, max_upload_bytes=1 << 20) as (http, _app):
        r = await http.post("/api/uploads", content=body(), headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 413
    assert sent < 4 << 20, f"{sent} bytes were read before the limit answered"
    assert list(Path(tempfile.gettempdir()).glob("feqa-upload-*")) == []
