"""Where the running stack is: ``feqa up`` writes ``<data dir>/stack.json`` (mode 0600) once its services are up
and removes it when it stops; other ``feqa`` commands read it so they talk to that stack without any setting.

The file holds no secret, only where things are: the launcher's pid, the Redis URL, the ingest's address and the
service key file. :func:`apply_defaults` (run by the ``feqa`` command before any sub-command) turns it into the
services' environment variables, each only where the operator did not set it already, and only while the launcher
that wrote it is alive. This module and the settings modules are the only places that touch the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import MutableMapping
from pathlib import Path

RUN_FILE = "stack.json"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    pid: int
    redis_url: str
    ingest_host: str
    ingest_port: int
    key_file: str
    urls: dict[str, str]

    def env(self) -> dict[str, str]:
        """What a ``feqa`` command needs to reach this stack (the key file only when the stack uses one)."""
        out = {"FEQA_REDIS_URL": self.redis_url, "FEQA_INGEST_HOST": self.ingest_host,
               "FEQA_INGEST_PORT": str(self.ingest_port)}  # fmt: skip
        if self.key_file:
            out.update(FEQA_INGEST_API_KEY_FILE=self.key_file, FEQA_DASHBOARD_INGEST_API_KEY_FILE=self.key_file)
        return out


def write(data_dir: Path, info: RunInfo) -> Path:
    path = data_dir / RUN_FILE
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dataclasses.asdict(info), f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def clear(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / RUN_FILE).unlink()


def read(data_dir: Path) -> RunInfo | None:
    """The running stack's info, or None (no file, unreadable, or its launcher is gone)."""
    try:
        raw = json.loads((data_dir / RUN_FILE).read_text())
        info = RunInfo(int(raw["pid"]), str(raw["redis_url"]), str(raw["ingest_host"]), int(raw["ingest_port"]),
                       str(raw["key_file"]), {str(k): str(v) for k, v in dict(raw["urls"]).items()})  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def apply_defaults(data_dir: Path, environ: MutableMapping[str, str]) -> RunInfo | None:
    """Point this process's settings at the running stack where the operator set nothing; return the stack."""
    info = read(data_dir)
    if info is None:
        return None
    for name, value in info.env().items():
        if name == "FEQA_INGEST_API_KEY_FILE" and "FEQA_INGEST_API_KEY" in environ:
            continue  # an explicit key wins, and the two sources may not both be set
        if name == "FEQA_DASHBOARD_INGEST_API_KEY_FILE" and "FEQA_DASHBOARD_INGEST_API_KEY" in environ:
            continue
        environ.setdefault(name, value)
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
