"""HTTP upload of a recorded video: stream it to a temporary file within the size limit, refuse what is not video,
then ingest it in the background as its own session.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile

from common.messages import Consent
from common.protocols import get_protocol
from ingest.api import State, require_api_key
from ingest.recorded import VideoFileError, ingest_file, probe
from ingest.sessions import SessionSpec

log = logging.getLogger(__name__)

router = APIRouter()

_CHUNK = 1 << 20


@router.post("/api/uploads", status_code=202, dependencies=[Depends(require_api_key)])
async def upload(
    state: State,
    file: Annotated[UploadFile, File()],
    protocol: Annotated[str, Form()],
    task: Annotated[str, Form()] = "",
    patient_id: Annotated[str, Form(max_length=128)] = "",
    pace: Annotated[Literal["native", "fast"], Form()] = "fast",
    live_scoring: Annotated[bool, Form()] = True,
    research: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    proto = get_protocol(protocol)
    if task:
        proto.task(task)
    state.registry.check_capacity()
    limit = state.settings.max_upload_bytes
    suffix = Path(file.filename or "upload").suffix[:16]
    handle = tempfile.NamedTemporaryFile(prefix="feqa-upload-", suffix=suffix, delete=False)  # noqa: SIM115
    path = Path(handle.name)
    keep = False
    try:
        size = 0
        with handle:
            while chunk := await file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"the upload is larger than the limit of {limit} bytes")
                await asyncio.to_thread(handle.write, chunk)
        try:
            info = await asyncio.to_thread(probe, path)
        except VideoFileError as exc:
            raise HTTPException(422, str(exc).replace(path.name, file.filename or "the upload")) from None
        consent = Consent(live_scoring=live_scoring, recording=False, research=research)
        spec = SessionSpec(patient_id or "upload", proto.name, consent, info.fps, source="file")
        sid = await state.sessions.create(spec)

        async def job() -> None:
            try:
                await ingest_file(
                    state.bus,
                    state.sessions,
                    state.settings,
                    path,
                    protocol=proto.name,
                    task=task,
                    pace=pace,
                    sid=sid,
                    info=info,
                    consent=consent,
                    counters=state.counters,
                )
            finally:
                await asyncio.to_thread(path.unlink, True)

        state.registry.spawn_job(sid, job())
        keep = True
        return {"sid": sid, "width": info.width, "height": info.height, "fps": info.fps, "pace": pace}
    finally:
        await file.close()
        if not keep:
            await asyncio.to_thread(path.unlink, True)
