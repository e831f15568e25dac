"""The stack's service key: made at the first ``feqa up``, kept in ``<data dir>/ingest.key`` (mode 0600), rotated
by ``feqa key rotate``.

The ingest reads the file (``FEQA_INGEST_API_KEY_FILE``) and re-reads it when it changes; the dashboard reads the
same file (``FEQA_DASHBOARD_INGEST_API_KEY_FILE``) before each call, so both use one credential and a rotation
needs no restart. The file is replaced atomically (a 0600 temporary file renamed over it), so a reader never sees
half a key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from pathlib import Path

from common.errors import ConfigError

KEY_FILE = "ingest.key"


@dataclasses.dataclass(frozen=True)
class ServiceKeyFile:
    path: Path
    key: str
    created: bool  # made just now (the caller shows it once)


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def ensure_key(data_dir: Path) -> ServiceKeyFile:
    """The stored key, or a new one written 0600 when there is none (or the file is empty)."""
    path = key_path(data_dir)
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:
        raise ConfigError(f"cannot read the service key {path}: {exc.strerror}; fix its permissions") from None
    if key:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return ServiceKeyFile(path, key, created=False)
    return ServiceKeyFile(path, write_key(path), created=True)


def rotate_key(data_dir: Path) -> ServiceKeyFile:
    """Replace the key with a new one (the running ingest and dashboard switch at their next request)."""
    path = key_path(data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"no stack data folder {data_dir}: run feqa up once first (or set FEQA_STACK_DATA_DIR)")
    return ServiceKeyFile(path, write_key(path), created=True)


def write_key(path: Path) -> str:
    key = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return key
