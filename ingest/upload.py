"""HTTP upload of a recorded video (service key): the body is streamed to a temporary file and cut at the size
limit while it arrives (ingest.multipart), what is not video or is too short is refused, then the file is ingested
in the background as its own session. The caller follows it at ``status_url`` (GET /api/sessions/{sid}): the
session ends ``completed``, ``no_face``, ``not_tracked`` or ``file_truncated``, with frame and face counts in its
stats.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from common.messages import Consent
from common.protocols import get_protocol
from ingest.api import PatientId, State, admit_new_session, client_of, require_service_key
from ingest.errors import clip
from ingest.multipart import read_upload
from ingest.recorded import VideoFileError, ingest_file, probe
from ingest.sessions import SessionSpec

log = logging.getLogger(__name__)

router = APIRouter()


class UploadFields(BaseModel):
    """The form fields beside the file."""

    model_config = {"extra": "forbid"}

    protocol: str = Field(max_length=32)
    task: str = Field("", max_length=64)
    patient_id: PatientId = "upload"
    pace: Literal["native", "fast"] = "fast"
    live_scoring: bool = True
    research: bool = False


@router.post("/api/uploads", status_code=202, dependencies=[Depends(require_service_key)])
async def upload(state: State, request: Request) -> dict[str, Any]:
    s = state.settings
    state.limiter.hit("uploads", client_of(request), s.rate_uploads_per_min, what="uploads")
    state.registry.check_capacity()
    form = await read_upload(request.headers.get("content-type"), request.stream(), max_file_bytes=s.max_upload_bytes)
    path = form.path
    if path is None:  # read_upload always sets it on success; kept for the type checker
        raise HTTPException(400, "the upload has no file")
    keep = False
    try:
        try:
            fields = UploadFields(**form.fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "form"
            raise HTTPException(422, f"invalid upload field {clip(where)}: {clip(first.get('msg', ''), 120)}") from None
        proto = get_protocol(fields.protocol)
        if fields.task:
            proto.task(fields.task)
        name = Path(form.filename).name or "the upload"
        try:
            info = await asyncio.to_thread(probe, path, s.min_upload_frames)
        except VideoFileError as exc:
            raise HTTPException(422, str(exc).replace(path.name, clip(name))) from None
        await admit_new_session(state)
        consent = Consent(live_scoring=fields.live_scoring, recording=False, research=fields.research)
        sid = await state.sessions.create(SessionSpec(fields.patient_id, proto.name, consent, info.fps, source="file"))

        async def job() -> None:
            try:
                await ingest_file(state.bus, state.sessions, s, path, protocol=proto.name, task=fields.task,
                                  pace=fields.pace, sid=sid, info=info, consent=consent,
                                  counters=state.counters)  # fmt: skip
            finally:
                await asyncio.to_thread(path.unlink, True)

        state.registry.spawn_job(sid, job())
        keep = True
        return {"sid": sid, "width": info.width, "height": info.height, "fps": info.fps, "pace": fields.pace,
                "status_url": f"/api/sessions/{sid}"}  # fmt: skip
    finally:
        if not keep:
            await asyncio.to_thread(path.unlink, True)
