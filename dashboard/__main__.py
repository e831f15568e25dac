"""``python -m dashboard``: serve the clinician dashboard (settings from ``FEQA_DASHBOARD_*``)."""

from common.launcher import watch_launcher
from common.logs import setup_logging
from dashboard.server import run
from dashboard.settings import DashboardSettings

if __name__ == "__main__":
    settings = DashboardSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    watch_launcher(settings.common.launcher_pid)
    run(settings)
