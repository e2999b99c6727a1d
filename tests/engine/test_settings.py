"""Settings come from the environment in one place, with working defaults and no secret in logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import PROJECT_ROOT, Settings


def test_defaults_put_a_sqlite_database_in_the_data_dir_and_serve_on_port_8000(tmp_path: Path) -> None:
    """With only RAPPORT_DATA_DIR set: SQLite in that folder, port 8000, base URL on that port, no Redis/SMTP."""
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path)})

    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'rapport.db'}"
    assert settings.is_sqlite
    assert settings.port == 8000
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.redis_url is None and settings.smtp_url is None


def test_the_default_base_url_follows_port(tmp_path: Path) -> None:
    """PORT=9001 serves on 9001 and links point there."""
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "PORT": "9001"})

    assert settings.port == 9001
    assert settings.base_url == "http://127.0.0.1:9001"


def test_an_explicit_base_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    """BASE_URL is used as given, without a trailing slash so links can be joined with "/"."""
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "BASE_URL": "https://rapport.example/"})

    assert settings.base_url == "https://rapport.example"


def test_a_generated_secret_key_is_persisted_in_the_data_dir_and_reused(tmp_path: Path) -> None:
    """Without SECRET_KEY a key is generated once, kept in <data dir>/secret_key (0600) and read back later."""
    env = {"RAPPORT_DATA_DIR": str(tmp_path / "data")}

    first = Settings.from_env(env)
    second = Settings.from_env(env)

    key_file = tmp_path / "data" / "secret_key"
    assert len(first.secret_key) == 64
    assert key_file.read_text().strip() == first.secret_key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert second.secret_key == first.secret_key


def test_secret_key_from_the_environment_wins_and_writes_no_file(tmp_path: Path) -> None:
    """Production sets SECRET_KEY: it is used as is and nothing is written to the data dir."""
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "SECRET_KEY": "from-env"})

    assert settings.secret_key == "from-env"
    assert not (tmp_path / "secret_key").exists()


SECRET_ENV = {
    "SECRET_KEY": "s3cr3t-key-value",
    "DATABASE_URL": "postgresql+psycopg://u:hunter2@h/db",
    "REDIS_URL": "redis://:redispass@cache:6379/0",
    "SMTP_URL": "smtps://mailer:smtp-pw@smtp.example:465",
}


@pytest.mark.parametrize("show", [repr, str, lambda s: str(s.describe())], ids=["repr", "str", "describe"])
def test_printing_settings_never_shows_the_secret_key_or_url_passwords(tmp_path: Path, show) -> None:
    """repr(), str() and describe() mask URL passwords and leave the secret key out."""
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), **SECRET_ENV})

    printed = show(settings)

    for secret in ("s3cr3t-key-value", "hunter2", "redispass", "smtp-pw"):
        assert secret not in printed
    assert "postgresql+psycopg://u:***@h/db" in printed  # masked, yet still says where the database is


def test_describe_masks_passwords_but_keeps_user_and_host(tmp_path: Path) -> None:
    """Each URL keeps scheme, user and host so a misconfiguration can still be seen."""
    described = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), **SECRET_ENV}).describe()

    assert described["database_url"] == "postgresql+psycopg://u:***@h/db"
    assert described["redis_url"] == "redis://:***@cache:6379/0"
    assert described["smtp_url"] == "smtps://mailer:***@smtp.example:465"
    assert "secret_key" not in described


def test_a_server_database_without_secret_key_is_refused(tmp_path: Path) -> None:
    """Production must set SECRET_KEY: machines would otherwise each generate their own."""
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql+psycopg://h/db"})
    assert not (tmp_path / "secret_key").exists()


def test_without_rapport_data_dir_the_checkouts_var_is_used_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another directory, the data directory is still the source checkout's var/, never ./var."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"SECRET_KEY": "from-env"})

    assert settings.data_dir == PROJECT_ROOT / "var"
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'rapport.db'}"
    assert not (tmp_path / "var").exists()
