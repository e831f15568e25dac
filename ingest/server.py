"""Serve the ingest app with uvicorn (``run`` is what ``python -m ingest`` and ``feqa ingest serve`` call)."""

from __future__ import annotations

import uvicorn

from ingest.app import create_app
from ingest.settings import IngestSettings


def run(settings: IngestSettings) -> None:
    """Serve until interrupted; every peer is closed on shutdown."""
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, ws="websockets-sansio")
