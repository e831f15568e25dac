"""``python -m ingest``: serve the ingest service (settings from ``FEQA_INGEST_*``)."""

from common.launcher import watch_launcher
from common.logs import setup_logging
from ingest.server import run
from ingest.settings import IngestSettings

if __name__ == "__main__":
    settings = IngestSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    watch_launcher(settings.common.launcher_pid)
    run(settings)
