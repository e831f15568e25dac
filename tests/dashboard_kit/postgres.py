"""A throwaway PostgreSQL server for tests: Debian's binaries run as the ``postgres`` user (they refuse root) in a
temporary directory on a free loopback port; :func:`postgres_problem` says why none can be started here."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.dashboard_kit import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_problem() -> str | None:
    if _bin_dir() is None:
        return "PostgreSQL server binaries are missing (apt-get install postgresql)"
    if os.geteuid() == 0 and (
        shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode
    ):
        return "running as root without a postgres user to run the server as"
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(password: str | None = None) -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL; stop it and delete its files.

    With ``password`` the ``postgres`` role has it and TCP logins must give it (scram-sha-256); the URL then has
    no password, so a test shows where the password comes from."""
    bins = _bin_dir()
    assert bins is not None
    root = Path(tempfile.mkdtemp(prefix="feqa-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    run = dict(capture_output=True, timeout=120, check=True)
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = root / "pw"
        pwfile.write_text(password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run(_as_postgres([str(bins / "initdb"), "-D", str(data), "-U", "postgres", *auth, "-E", "UTF8"]), **run)  # type: ignore[arg-type]
    opts = f"-p {port} -k {sock} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_postgres([str(bins / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(root / "log"), "start"]), **run
    )  # type: ignore[arg-type]
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bins / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
