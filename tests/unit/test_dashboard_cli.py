"""Account commands: no default password, prompt or generate-and-print-once, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.accounts import authenticate
from dashboard.db import Database
from dashboard.settings import DashboardSettings
from infra.cli import feqa

pytestmark = pytest.mark.unit


def test_create_accounts_by_prompt_and_by_generated_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    monkeypatch.setenv("FEQA_DASHBOARD_DATABASE_URL", url)
    run = CliRunner().invoke
    missing = run(feqa, ["dashboard", "create-clinician", "dora", "--clinic", "North", "--generate"])
    assert missing.exit_code != 0 and "create-clinic" in missing.output
    assert run(feqa, ["dashboard", "create-clinic", "North"]).exit_code == 0
    assert "exists already" in run(feqa, ["dashboard", "create-clinic", "north"]).output
    weak = run(feqa, ["dashboard", "create-admin", "root"], input="short\nshort\n")
    assert weak.exit_code != 0 and "12 characters" in weak.output
    typed = run(
        feqa, ["dashboard", "create-admin", "root", "--clinic", "North"], input="a long passphrase\na long passphrase\n"
    )
    assert typed.exit_code == 0, typed.output
    assert "a long passphrase" not in typed.output  # never echoed
    made = run(feqa, ["dashboard", "create-clinician", "dora", "--clinic", "North", "--generate"])
    assert made.exit_code == 0, made.output
    password = next(line.split(": ", 1)[1] for line in made.output.splitlines() if line.startswith("password: "))
    assert len(password) >= 20
    db = Database(url)
    with db.session() as s:
        user = authenticate(s, "dora", password, attempts=5, lockout_s=60)
        assert user is not None and user.role == "clinician"
        assert user.password_hash.startswith("$argon2") and password not in user.password_hash
        assert authenticate(s, "root", "a long passphrase", attempts=5, lockout_s=60) is not None
        assert authenticate(s, "root", "", attempts=5, lockout_s=60) is None
    dup = run(feqa, ["dashboard", "create-admin", "root", "--generate"])
    assert dup.exit_code != 0 and "exists already" in dup.output
    assert run(feqa, ["dashboard", "downgrade", "base"]).exit_code != 0  # needs --yes


def test_settings_read_the_ingest_key_from_a_file(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("abc\n")
    assert DashboardSettings(ingest_api_key_file=key).ingest_key() == "abc"
    assert DashboardSettings().ingest_key() is None
    with pytest.raises(ValueError, match="not both"):
        DashboardSettings(ingest_api_key="x", ingest_api_key_file=key)
    from common.errors import ConfigError

    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        DashboardSettings(ingest_api_key_file=tmp_path / "empty").ingest_key()
    with pytest.raises(ConfigError, match="cannot read"):
        DashboardSettings(ingest_api_key_file=tmp_path / "none").ingest_key()
