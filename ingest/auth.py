"""The service credential: who may create, read, stop sessions and upload (the dashboard, the CLI, an operator).

The key comes from ``FEQA_INGEST_API_KEY`` or from the file ``FEQA_INGEST_API_KEY_FILE`` (``feqa up`` creates it
0600 under ``.feqa/``; ``feqa key rotate`` replaces it). The file is read again whenever its modification time or
size changes, so a rotation takes effect at the next request without a restart, and the dashboard, which reads the
same file, sends the new key from then on. Keys are compared in constant time. Patient pages never hold this key:
they use their join link and the page key it yields (ingest.tokens).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path

from common.errors import ConfigError

log = logging.getLogger(__name__)

MIN_KEY_CHARS = 16


class ServiceKey:
    """The current service key, from a fixed value or a file (re-read when the file changes)."""

    def __init__(self, key: str | None = None, path: Path | None = None) -> None:
        if (key is None) == (path is None):
            raise ConfigError("the service key needs exactly one source: a value or a file")
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._key = key or ""
        self._lock = threading.Lock()
        if key is not None:
            _check(key, "FEQA_INGEST_API_KEY")
        else:
            self.current()  # a missing or empty file is a configuration error at start, not at the first request

    def current(self) -> str:
        """The key in force now."""
        if self._path is None:
            return self._key
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise ConfigError(f"cannot read the service key file {self._path}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    key = self._path.read_text().strip()
                except OSError as exc:
                    raise ConfigError(f"cannot read the service key file {self._path}: {exc.strerror}") from None
                _check(key, str(self._path))
                if self._stamp is not None:
                    log.info("service key changed (%s)", self._path)
                self._key, self._stamp = key, stamp
            return self._key

    def matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is the key in force (constant time)."""
        if not presented or len(presented) > 512:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self.current().encode())


def _check(key: str, where: str) -> None:
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"the service key from {where} is too short (at least {MIN_KEY_CHARS} characters)")
