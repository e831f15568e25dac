"""The compose side of the configuration: docker-compose.yml's own variables, the secret files it mounts, and
``feqa compose-secrets``, which makes those files.

Every feqa setting is a ``FEQA_*`` variable of a settings class (``infra/feqa.env.example`` lists them all); the
variables below are the compose file's own (``${NAME:-default}``), read from ``.env`` or the shell. A test checks
that the compose files use exactly these and the settings, with these defaults.

Secrets are files (compose ``secrets:``, mounted at ``/run/secrets/<name>``) that the services read through their
``*_FILE`` settings. They are created random, in a directory only its owner may enter (0700); the files themselves
are 0644 because compose bind-mounts them as they are and the containers run as other users (postgres, uid 1000).
"""

from __future__ import annotations

import os
import secrets as random
from pathlib import Path

COMPOSE_VARIABLES: dict[str, tuple[str, str]] = {
    "FEQA_IMAGE": ("feqa:latest", "image of every feqa service (built from infra/Dockerfile)"),
    "FEQA_IMAGE_EXTRAS": ("gpu,fleet", "extras installed in that image"),
    "FEQA_TRAINER_IMAGE": ("feqa-trainer:latest", "the trainer's image (the same Dockerfile plus the train extra)"),
    "FEQA_GPUS_PER_WORKER": ("1", "GPUs each tracker, scorer and trainer container reserves"),
    "FEQA_REDIS_MAXMEMORY": ("2gb", "the live Redis's memory cap (a full Redis refuses writes, never evicts)"),
    "FEQA_INGEST_PUBLISH": ("8000", "host port of the patient page and WebRTC signalling"),
    "FEQA_DASHBOARD_PUBLISH": ("8001", "host port of the clinician dashboard"),
}

SECRETS: dict[str, str] = {
    "ingest_api_key": "the ingest's service key (FEQA_INGEST_API_KEY_FILE; the dashboard sends it)",
    "dashboard_db_password": "the dashboard's PostgreSQL password (POSTGRES_PASSWORD_FILE, "
    "FEQA_DASHBOARD_DATABASE_PASSWORD_FILE)",
}


def make_secrets(directory: Path) -> tuple[list[Path], list[Path]]:
    """Create the missing secret files in ``directory`` (0700); return (created, kept). Existing ones are kept."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    created, kept = [], []
    for name in SECRETS:
        path = directory / name
        if path.exists():
            kept.append(path)
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(random.token_urlsafe(32) + "\n")
        path.chmod(0o644)
        created.append(path)
    return created, kept
