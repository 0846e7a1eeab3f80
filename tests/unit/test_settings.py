from __future__ import annotations

import pytest

from infra.cli.config_cmd import generated_files
from infra.settings import Settings, SettingsError, load_settings, setting_docs


def test_defaults_when_environment_is_empty() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.postgres_port == 15432
    assert settings.redis_url == "redis://127.0.0.1:16379/0"


def test_values_are_converted_to_their_field_types() -> None:
    settings = load_settings(
        {
            "ICONMARKET_API_PORT": "9001",
            "ICONMARKET_HEALTH_TIMEOUT_S": "0.5",
            "ICONMARKET_POSTGRES_HOST": "db.internal",
        }
    )
    assert settings.api_port == 9001
    assert settings.health_timeout_s == 0.5
    assert settings.postgres_dsn.startswith("postgresql://iconmarket:iconmarket@db.internal:15432/")


def test_a_malformed_number_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ICONMARKET_API_PORT='eighty'"):
        load_settings({"ICONMARKET_API_PORT": "eighty"})


def test_secrets_never_appear_in_repr_or_redacted_output() -> None:
    settings = load_settings({"ICONMARKET_STRIPE_SECRET_KEY": "sk_live_supersecret"})
    assert "sk_live_supersecret" not in repr(settings)
    assert settings.redacted()["stripe_secret_key"] == "***"
    assert settings.redacted()["api_port"] == 8000


def test_every_setting_is_documented() -> None:
    rows = setting_docs()
    assert len(rows) == len(Settings.__dataclass_fields__)
    assert all(row["name"].startswith("ICONMARKET_") and row["doc"] for row in rows)


def test_checked_in_configuration_docs_are_current() -> None:
    stale = [str(path) for path, text in generated_files().items() if path.read_text() != text]
    assert stale == [], "run `iconmarket config docs` and commit the result"
