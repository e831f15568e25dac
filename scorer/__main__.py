"""``python -m scorer``: load settings, set up logging, run the worker."""

from __future__ import annotations

from common.launcher import watch_launcher
from common.logs import setup_logging
from scorer.settings import ScorerSettings
from scorer.worker import run

if __name__ == "__main__":
    settings = ScorerSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    watch_launcher(settings.common.launcher_pid)
    run(settings)
