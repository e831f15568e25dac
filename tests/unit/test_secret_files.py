"""Secrets from files (docker secrets): the ingest service key and the dashboard's database password."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from common.errors import ConfigError
from common.settings import MAX_SECRET_BYTES, read_secret_file
from dashboard.settings import DashboardSettings
from ingest.auth import ServiceKey
from ingest.settings import IngestSettings

pytestmark = pytest.mark.unit


def test_a_secret_file_is_read_stripped_and_bad_files_say_what_to_fix(tmp_path: Path) -> None:
    good = tmp_path / "key"
    good.write_text("  s3cret-key\n")
    assert read_secret_file(good, "FEQA_X_FILE") == "s3cret-key"
    cases = {
        "missing": (tmp_path / "nope", "cannot read FEQA_X_FILE"),
        "empty": (tmp_path / "empty", "is empty"),
        "huge": (tmp_path / "huge", f"more than {MAX_SECRET_BYTES} bytes"),
        "binary": (tmp_path / "binary", "not UTF-8"),
        "a directory": (tmp_path, "cannot read FEQA_X_FILE"),
    }
    (tmp_path / "empty").write_text(" \n")
    (tmp_path / "huge").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    for name, (path, message) in cases.items():
        with pytest.raises(ConfigError, match=message):
            read_secret_file(path, "FEQA_X_FILE")
        assert name


def test_the_ingest_key_comes_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "ingest_api_key"
    key.write_text("k-1234567890abcdef\n")
    monkeypatch.setenv("FEQA_INGEST_API_KEY_FILE", str(key))
    settings = IngestSettings()
    assert settings.api_key is None and settings.api_key_file == key  # the file is the source: re-read on rotation
    service_key = ServiceKey(None, settings.api_key_file)
    assert service_key.current() == "k-1234567890abcdef" and service_key.matches("k-1234567890abcdef")
    assert not service_key.matches("k-1234567890abcde")
    assert "k-1234567890abcdef" not in repr(settings)
    monkeypatch.setenv("FEQA_INGEST_API_KEY", "other")
    with pytest.raises(ValueError, match="not both"):
        IngestSettings()
    monkeypatch.delenv("FEQA_INGEST_API_KEY")
    key.write_text("")
    with pytest.raises(ConfigError, match="ingest_api_key"):
        ServiceKey(None, IngestSettings().api_key_file)  # an empty file stops the start with the file named


def test_the_database_password_comes_from_its_file(tmp_path: Path) -> None:
    pw = tmp_path / "db_password"
    pw.write_text("p@ss:w/rd %20\n")  # characters a URL must escape
    base = "postgresql+psycopg://feqa@db:5432/feqa"
    settings = DashboardSettings(database_url=base, database_password_file=pw)
    url = make_url(settings.database_url_with_password())
    assert url.password == "p@ss:w/rd %20" and url.username == "feqa" and url.host == "db" and url.database == "feqa"
    assert "p@ss" not in repr(settings) and settings.database_url == base
    assert DashboardSettings(database_url=base).database_url_with_password() == base
    with pytest.raises(ConfigError, match="has a password"):
        DashboardSettings(database_url="postgresql+psycopg://feqa:x@db/feqa",
                          database_password_file=pw).database_url_with_password()  # fmt: skip
    with pytest.raises(ConfigError, match="cannot read"):
        DashboardSettings(database_url=base, database_password_file=tmp_path / "gone").database_url_with_password()
    with pytest.raises(ConfigError, match="not a database URL"):
        DashboardSettings(database_url="::", database_password_file=pw).database_url_with_password()
