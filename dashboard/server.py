"""Serve the dashboard app with uvicorn (``run`` is what ``python -m dashboard`` and ``feqa dashboard serve`` call)."""

from __future__ import annotations

import uvicorn

from dashboard.app import create_app
from dashboard.settings import DashboardSettings


def run(settings: DashboardSettings) -> None:
    """Serve until interrupted (migrations run first, background tasks stop on shutdown)."""
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, ws="websockets-sansio")
