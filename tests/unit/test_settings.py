from __future__ import annotations

import dataclasses

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


@pytest.mark.parametrize("tolerance", ["0", "-1"])
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_webhook_tolerance_below_one_second_is_refused(env: str, tolerance: str) -> None:
    environ = {
        "ICONMARKET_ENV": env,
        "ICONMARKET_STRIPE_WEBHOOK_TOLERANCE_S": tolerance,
        "ICONMARKET_STRIPE_SECRET_KEY": "sk_live_realkey",
        "ICONMARKET_STRIPE_WEBHOOK_SECRET": "whsec_realsecret",
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value) == (
        f"ICONMARKET_STRIPE_WEBHOOK_TOLERANCE_S={tolerance} must be at least 1: 0 or less "
        "would accept replayed webhooks of any age"
    )


def test_a_one_second_tolerance_is_accepted() -> None:
    assert (
        load_settings({"ICONMARKET_STRIPE_WEBHOOK_TOLERANCE_S": "1"}).stripe_webhook_tolerance_s
        == 1
    )


PROD_SECRETS = {
    "ICONMARKET_ENV": "prod",
    "ICONMARKET_JWT_SECRET": "a-long-random-production-secret-0f9e8d7c",
    "ICONMARKET_STRIPE_SECRET_KEY": "sk_live_realkey",
    "ICONMARKET_STRIPE_WEBHOOK_SECRET": "whsec_realsecret",
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ICONMARKET_STRIPE_WEBHOOK_SECRET", None),
        ("ICONMARKET_STRIPE_WEBHOOK_SECRET", "whsec_test_iconmarket"),
        ("ICONMARKET_STRIPE_WEBHOOK_SECRET", ""),
        ("ICONMARKET_STRIPE_WEBHOOK_SECRET", "  "),
        ("ICONMARKET_STRIPE_SECRET_KEY", None),
        ("ICONMARKET_STRIPE_SECRET_KEY", "sk_test_123"),
        ("ICONMARKET_STRIPE_SECRET_KEY", ""),
        ("ICONMARKET_JWT_SECRET", None),
        ("ICONMARKET_JWT_SECRET", "dev-only-change-me-0123456789abcdef"),
    ],
    ids=[
        "webhook-unset",
        "webhook-default",
        "webhook-empty",
        "webhook-blank",
        "key-unset",
        "key-default",
        "key-empty",
        "jwt-unset",
        "jwt-default",
    ],
)
def test_prod_refuses_empty_or_default_secrets(variable: str, value: str | None) -> None:
    environ = dict(PROD_SECRETS)
    if value is None:
        del environ[variable]
    else:
        environ[variable] = value
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value) == (
        f"{variable} must be set to a real secret when ICONMARKET_ENV=prod (it is empty or the "
        "public development default)"
    )


def test_prod_with_real_secrets_loads_and_dev_keeps_the_defaults() -> None:
    prod = load_settings(PROD_SECRETS)
    assert (prod.env, prod.stripe_webhook_secret, prod.stripe_secret_key) == (
        "prod",
        "whsec_realsecret",
        "sk_live_realkey",
    )
    dev = load_settings({"ICONMARKET_ENV": "test"})
    assert (dev.stripe_webhook_secret, dev.stripe_secret_key) == (
        "whsec_test_iconmarket",
        "sk_test_123",
    )


def test_settings_built_directly_are_validated_too() -> None:
    with pytest.raises(SettingsError):
        Settings(env="PROD")
    with pytest.raises(SettingsError):
        dataclasses.replace(Settings(), stripe_webhook_tolerance_s=0)
