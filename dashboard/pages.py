"""The pages: plain HTML files with no build step; each loads ``/static/app.js`` (and uPlot where it plots), which
fetch the JSON API. Every page needs a login (without one it redirects to ``/login``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from dashboard.access import PageCaller

router = APIRouter()

PAGES = Path(__file__).with_name("static")


def _page(name: str) -> FileResponse:
    return FileResponse(PAGES / name, media_type="text/html")


@router.get("/", include_in_schema=False)
def home(caller: PageCaller) -> FileResponse:
    return _page("patients.html")


@router.get("/patients/{patient_id}", include_in_schema=False)
def patient_page(patient_id: int, caller: PageCaller) -> FileResponse:
    return _page("patient.html")


@router.get("/sessions/{session_id}", include_in_schema=False)
def session_page(session_id: int, caller: PageCaller) -> FileResponse:
    return _page("session.html")


@router.get("/console", include_in_schema=False)
def console_page(caller: PageCaller) -> FileResponse:
    return _page("console.html")


@router.get("/admin", include_in_schema=False)
def admin_page(caller: PageCaller) -> FileResponse:
    return _page("admin.html")
