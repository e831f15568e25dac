"""``python -m tracker``: load settings, set up logging, run the worker."""

from __future__ import annotations

from common.launcher import watch_launcher
from common.logs import setup_logging
from tracker.settings import TrackerSettings
from tracker.worker import run

if __name__ == "__main__":
    settings = TrackerSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    watch_launcher(settings.common.launcher_pid)
    run(settings)
