"""A service started by a launcher (``feqa up``, ``feqa demo``) stops when that launcher is gone.

The launcher starts each service in a session of its own (a Ctrl-C in its terminal reaches only the launcher, which
then stops the services in order), so a launcher killed outright (SIGKILL, an out-of-memory kill, a crashed parent)
would leave its services running, holding their ports and Redis connections. Each service therefore watches the
launcher it was started by (``FEQA_LAUNCHER_PID``, set by the launcher) and, once its parent is no longer that
process, stops itself the way SIGTERM stops it (its own clean shutdown), and exits outright if that does not end it
within the grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)

GRACE_S = 15.0  # after the SIGTERM it sends itself, a service still running this long later is ended


def watch_launcher(launcher_pid: int, poll_s: float = 0.5, grace_s: float = GRACE_S) -> threading.Thread | None:
    """Start a daemon thread that stops this process once its parent is no longer ``launcher_pid``; ``None`` (no
    thread) when ``launcher_pid`` is 0 (started by hand or by a container runtime). A parent that is already another
    process at the start counts as gone."""
    if launcher_pid <= 0:
        return None

    def watch() -> None:
        while os.getppid() == launcher_pid:
            time.sleep(poll_s)
        log.warning("the launcher that started this service (pid %d) is gone: stopping", launcher_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        log.error("still running %.0f s after the launcher went: exiting now", grace_s)
        logging.shutdown()
        os._exit(1)

    thread = threading.Thread(target=watch, name="launcher-watch", daemon=True)
    thread.start()
    return thread
