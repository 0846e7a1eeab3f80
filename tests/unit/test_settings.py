from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from infra.cli.config_cmd import generated_files
from infra.settings import Settings, SettingsError, install_secret, load_settings, setting_docs

SECRET = "a-test-signing-secret-of-more-than-32-chars"
DEV = {"ICONMARKET_ENV": "dev", "ICONMARKET_JWT_SECRET": SECRET}
"""dev mode with a given secret: no install secret is read or made (no I/O)."""


def test_defaults_when_only_the_mode_is_set() -> None:
    settings = load_settings(DEV)
    assert settings == Settings(env="dev", jwt_secret=SECRET)
    assert settings.postgres_port == 15432
    assert settings.redis_url == "redis://127.0.0.1:16379/0"


def test_values_are_converted_to_their_field_types() -> None:
    settings = load_settings(
        {
            **DEV,
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
    settings = load_settings({**DEV, "ICONMARKET_STRIPE_SECRET_KEY": "sk_live_supersecret"})
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
        load_settings(
            {**DEV, "ICONMARKET_STRIPE_WEBHOOK_TOLERANCE_S": "1"}
        ).stripe_webhook_tolerance_s
        == 1
    )


PROD_SECRETS = {
    "ICONMARKET_ENV": "prod",
    "ICONMARKET_JWT_SECRET": "a-long-random-production-secret-0f9e8d7c",
    "ICONMARKET_STRIPE_SECRET_KEY": "sk_live_realkey",
    "ICONMARKET_STRIPE_WEBHOOK_SECRET": "whsec_realsecret",
    "ICONMARKET_METRICS_TOKEN": "a-real-metrics-token",
    "ICONMARKET_API_HOST": "0.0.0.0",
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
        ("ICONMARKET_METRICS_TOKEN", None),
        ("ICONMARKET_METRICS_TOKEN", " "),
    ],
    ids=[
        "webhook-unset",
        "webhook-default",
        "webhook-empty",
        "webhook-blank",
        "key-unset",
        "key-default",
        "key-empty",
        "metrics-unset",
        "metrics-blank",
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
    dev = load_settings({**DEV, "ICONMARKET_ENV": "test"})
    assert (dev.stripe_webhook_secret, dev.stripe_secret_key) == (
        "whsec_test_iconmarket",
        "sk_test_123",
    )


def test_settings_built_directly_are_validated_too() -> None:
    with pytest.raises(SettingsError):
        Settings(env="PROD")
    with pytest.raises(SettingsError):
        dataclasses.replace(Settings(env="dev", jwt_secret=SECRET), stripe_webhook_tolerance_s=0)


@pytest.mark.parametrize("mode", [None, "", "production", "PROD", "staging", "Dev"])
def test_a_mode_other_than_dev_test_or_prod_is_refused(mode: str | None) -> None:
    environ = dict(PROD_SECRETS)
    if mode is None:
        del environ["ICONMARKET_ENV"]
    else:
        environ["ICONMARKET_ENV"] = mode
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value) == (
        f"ICONMARKET_ENV={mode or ''!r} is not a mode: set it to one of dev, test, prod "
        "(`make run` sets dev, `make test` sets test; prod requires real secrets)"
    )


def test_prod_refuses_a_missing_or_short_signing_secret() -> None:
    for secret in (None, "", "short-secret"):
        environ = dict(PROD_SECRETS)
        if secret is None:
            del environ["ICONMARKET_JWT_SECRET"]
        else:
            environ["ICONMARKET_JWT_SECRET"] = secret
        with pytest.raises(SettingsError, match="ICONMARKET_JWT_SECRET must be at least 32"):
            load_settings(environ)


@pytest.mark.parametrize("mode", ["dev", "test"])
def test_dev_and_test_serve_on_loopback_only(mode: str) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert load_settings({**DEV, "ICONMARKET_ENV": mode, "ICONMARKET_API_HOST": host})
    with pytest.raises(SettingsError, match="serves on loopback only"):
        load_settings({**DEV, "ICONMARKET_ENV": mode, "ICONMARKET_API_HOST": "0.0.0.0"})


def test_dev_signs_with_a_secret_made_once_per_install(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    a = load_settings({"ICONMARKET_ENV": "dev", "ICONMARKET_STATE_DIR": str(first)})
    again = load_settings({"ICONMARKET_ENV": "test", "ICONMARKET_STATE_DIR": str(first)})
    b = load_settings({"ICONMARKET_ENV": "dev", "ICONMARKET_STATE_DIR": str(second)})
    assert a.jwt_secret == again.jwt_secret == install_secret(first)
    assert len(a.jwt_secret) == 64
    assert b.jwt_secret != a.jwt_secret  # never a constant: each install has its own
    assert stat.S_IMODE((first / "jwt-secret").stat().st_mode) == 0o600
    assert sorted(p.name for p in first.iterdir()) == ["jwt-secret"]  # no temporary left
    given = load_settings({**DEV, "ICONMARKET_STATE_DIR": str(tmp_path / "three")})
    assert given.jwt_secret == SECRET
    assert not (tmp_path / "three").exists()
