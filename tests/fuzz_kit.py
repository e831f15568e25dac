"""Generated bad input for the ingest (hypothesis strategies) and the server they are thrown at: a real uvicorn
serving the ingest app on 127.0.0.1 in a thread of its own, reached over real sockets.

Cases: SDP offers (a real aiortc offer truncated, with lines dropped, swapped, garbled, codecs renamed, or plain
text), session ids (any text, in every route that takes one), JSON bodies (any JSON, on every JSON route), and
uploads (any Content-Type, boundary, field names and bytes). The oracle: no answer is a 5xx, none takes longer
than the client's timeout (a hang fails the case), and the server still serves a normal session afterwards
(tests/integration/test_ingest_fuzz.py). benchmarks/ingest.py runs the same cases for ``fuzz_cases_per_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import CommonSettings
from ingest.app import create_app
from ingest.settings import IngestSettings
from tests.conftest import SERVICE_HEADERS, SERVICE_KEY

TIMEOUT_S = 15.0


def offer_template() -> str:
    """A real offer from an aiortc client (video, loopback candidate)."""
    from aiortc import RTCPeerConnection

    from ingest.ice import offered_host_addresses, rtc_configuration

    async def make() -> str:
        pc = RTCPeerConnection(rtc_configuration([]))
        pc.addTransceiver("video", direction="sendonly")
        with offered_host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return asyncio.run(make())


def fuzz_settings(redis_url: str, port: int) -> IngestSettings:
    """Limits high enough that the cases reach the code behind them (the limits themselves are tested apart)."""
    return IngestSettings(
        common=CommonSettings(redis_url=redis_url),
        port=port,
        api_key=SERVICE_KEY,
        ice_host_addresses=["127.0.0.1"],
        connect_timeout_s=2.0,
        max_sessions=10_000,
        rate_sessions_per_min=1e6,
        rate_uploads_per_min=1e6,
        rate_joins_per_min=1e6,
        max_upload_bytes=200_000,
        tracker_wait_s=0.5,
        allow_phantom=True,
    )


@contextlib.contextmanager
def ingest_in_thread(ingest: IngestSettings) -> Iterator[tuple[str, Any]]:
    """The ingest app on a real uvicorn in a background thread; yields its URL and the app."""
    app = create_app(ingest)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=ingest.port, log_config=None, ws="websockets-sansio", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="ingest-under-fuzz", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the ingest under test did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{ingest.port}", app
    finally:
        server.should_exit = True
        thread.join(20)


# ------------------------------------------------------------------------------------------------ strategies

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
SESSION_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "patient_id": st.one_of(st.text(max_size=80), JSON),
        "protocol": st.one_of(st.sampled_from(["pfed5", "palsy", "neuroface"]), st.text(max_size=20), JSON),
        "consent": st.one_of(
            st.dictionaries(st.sampled_from(["live_scoring", "recording", "research", "x"]), JSON), JSON
        ),
        "phantom": st.one_of(st.text(max_size=200), JSON),
    },
)


@st.composite
def mutated_offer(draw: st.DrawFn, template: str) -> dict[str, Any]:
    lines = template.split("\r\n")
    how = draw(st.sampled_from(["truncate", "drop", "garble", "codec", "swap", "text", "duplicate"]))
    if how == "truncate":
        sdp = template[: draw(st.integers(0, len(template)))]
    elif how == "drop":
        drop = set(draw(st.lists(st.integers(0, len(lines) - 1), max_size=6)))
        sdp = "\r\n".join(line for i, line in enumerate(lines) if i not in drop)
    elif how == "garble":
        i = draw(st.integers(0, len(lines) - 1))
        head = lines[i][:2] if draw(st.booleans()) else ""
        lines[i] = head + draw(st.text(max_size=60))
        sdp = "\r\n".join(lines)
    elif how == "codec":
        codec = draw(st.sampled_from(["VP8", "H264", "rtx"]))
        sdp = template.replace(codec, draw(st.text(min_size=0, max_size=12)))
    elif how == "swap":
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        sdp = "\r\n".join(lines)
    elif how == "duplicate":
        m = next(i for i, line in enumerate(lines) if line.startswith("m="))
        sdp = "\r\n".join(lines + lines[m:])
    else:
        sdp = draw(st.text(max_size=300))
    kind = draw(st.sampled_from(["offer", "offer", "offer", "answer", "", "pranswer"]))
    return {"sdp": sdp, "type": kind}


@st.composite
def upload_case(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    boundary = draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=30))
    types = [
        "multipart/form-data; boundary={b}",
        "multipart/form-data",
        "video/webm",
        "application/json",
        "multipart/mixed; boundary={b}",
        "",
    ]
    ctype = draw(st.sampled_from(types)).format(b=boundary)
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["file", "protocol", "task", "pace", "patient_id", "live_scoring", "x"]))
        filename = '; filename="a.webm"' if draw(st.booleans()) else ""
        value = draw(st.binary(max_size=200))
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    tail = f"--{boundary}--\r\n".encode() if draw(st.booleans()) else b""
    body = b"".join(parts) + tail + draw(st.binary(max_size=50))
    headers = {"Content-Type": ctype} if ctype else {}
    # any visible key with inner spaces: a value with a space at either end cannot be sent (HTTP strips it; h11
    # refuses it on the client side), so it would test the client, not the ingest
    printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(str.strip)
    headers["X-Api-Key"] = SERVICE_KEY if draw(st.booleans()) else draw(printable)
    return headers, body


def cases(template: str) -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("offer"), mutated_offer(template)),
        st.tuples(
            st.just("sid"),
            st.tuples(
                st.text(max_size=80),
                st.sampled_from(
                    [
                        "GET /api/sessions/{}",
                        "POST /api/sessions/{}/offer",
                        "POST /api/sessions/{}/events",
                        "POST /api/sessions/{}/end",
                        "POST /api/sessions/{}/stop",
                        "GET /api/join/{}",
                        "POST /api/join/{}",
                    ]
                ),
            ),
        ),
        st.tuples(
            st.just("json"),
            st.tuples(st.sampled_from(["sessions", "join", "events", "end", "stop"]), st.one_of(SESSION_FIELDS, JSON)),
        ),
        st.tuples(st.just("upload"), upload_case()),
    )


# ------------------------------------------------------------------------------------------------ running


class Fuzzer:
    """Throws cases at the ingest over ``http`` and checks the oracle; counts what it did."""

    def __init__(self, http: httpx.Client, template: str) -> None:
        self.http = http
        self.template = template
        self.count = 0
        self.statuses: dict[int, int] = {}

    def joined(self) -> tuple[str, str, str]:
        made = self.expect(
            self.http.post("/api/sessions", json={"patient_id": "fz", "protocol": "pfed5"}, headers=SERVICE_HEADERS),
            201,
        )
        joined = self.expect(self.http.post(f"/api/join/{made['token']}", json={"consent": True}), 200)
        return joined["sid"], joined["key"], made["token"]

    def expect(self, res: httpx.Response, status: int) -> Any:
        assert res.status_code == status, res.text
        return res.json()

    def check(self, res: httpx.Response) -> None:
        self.statuses[res.status_code] = self.statuses.get(res.status_code, 0) + 1
        assert res.status_code < 500, (
            f"{res.request.method} {res.request.url.path[:80]} -> {res.status_code}: {res.text[:300]}"
        )
        if res.headers.get("content-type", "").startswith("application/json") and res.status_code >= 400:
            detail = res.json().get("detail", "")
            assert isinstance(detail, str) and len(detail) <= 300, detail

    def run(self, kind: str, case: Any) -> None:
        self.count += 1
        h = self.http
        if kind == "offer":
            sid, key, _ = self.joined()
            body = json.dumps(case).encode()
            headers = {"X-Session-Key": key, "Content-Type": "application/json"}
            self.check(h.post(f"/api/sessions/{sid}/offer", content=body, headers=headers))
        elif kind == "sid":
            raw, route = case
            method, path = route.split(" ")
            url = path.format(quote(raw, safe=""))
            self.check(h.request(method, url, json={"consent": True, "type": "marker"}, headers=SERVICE_HEADERS))
        elif kind == "json":
            route, body = case
            sid, key, token = self.joined()
            url = {
                "sessions": "/api/sessions",
                "join": f"/api/join/{token}",
                "events": f"/api/sessions/{sid}/events",
                "end": f"/api/sessions/{sid}/end",
                "stop": f"/api/sessions/{sid}/stop",
            }[route]
            headers = {**SERVICE_HEADERS, "X-Session-Key": key, "Content-Type": "application/json"}
            self.check(h.post(url, content=json.dumps(body).encode(), headers=headers))  # NaN and Infinity too
        else:
            headers, body = case
            self.check(h.post("/api/uploads", content=body, headers=headers))


def fuzz(fuzzer: Fuzzer, max_examples: int, seed: int | None = None) -> None:
    """Run ``max_examples`` generated cases (hypothesis shrinks any failure to a small one)."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=seed is not None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(fuzzer.template))
    def one(case: tuple[str, Any]) -> None:
        fuzzer.run(*case)

    one()


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=httpx.Timeout(TIMEOUT_S))
