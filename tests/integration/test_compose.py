"""docker-compose.yml is valid for the real compose CLI and mirrors the native stack exactly.

The native stack (`iconmarket stack up`, infra/stack/) is the reference: same services, same
versions, same loopback ports and credentials, so the app's ICONMARKET_* defaults fit both.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import REPO_ROOT, Settings, load_settings
from infra.stack.base import Service, StackContext
from infra.stack.kafka import KAFKA_VERSION
from infra.stack.mailpit import MAILPIT_MAX_MESSAGES, MAILPIT_VERSION, Mailpit
from infra.stack.manager import SERVICES
from infra.stack.opensearch import OPENSEARCH_VERSION
from infra.stack.process import RunAs
from infra.stack.stripemock import STRIPE_MOCK_VERSION
from tests.support import DEV_ENVIRON

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

# Native stack service name -> compose service name.
COMPOSE_NAME = {
    "postgres": "postgres",
    "redis": "redis",
    "kafka": "kafka",
    "opensearch": "opensearch",
    "s3": "minio",
    "stripe-mock": "stripe-mock",
    "mailpit": "mailpit",
}
# Compose-only helpers that are not long-running services.
ONE_SHOT = {"minio-init"}
# Stateful services and the named volume that keeps their data.
VOLUMES = {
    "postgres": "postgres-data",
    "redis": "redis-data",
    "kafka": "kafka-data",
    "opensearch": "opensearch-data",
    "minio": "minio-data",
    "mailpit": "mailpit-data",
}


def _extra_ports(ctx: StackContext) -> dict[str, set[int]]:
    """Host ports a native service opens besides its main one and that compose publishes too."""
    return {"s3": {ctx.settings.s3_console_port}, "mailpit": {Mailpit().http_port(ctx)}}


def _compose_cli() -> list[str]:
    """The compose CLI: the docker compose v2 plugin, else the standalone docker-compose."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(
            ["docker", "compose", "version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    pytest.fail(
        "no compose CLI: neither `docker compose` (v2 plugin) nor `docker-compose` works; "
        "run `make compose-cli` (installs Debian's docker-compose package)"
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def native_settings() -> Settings:
    """The defaults, not this process's environment: compose hard-codes the defaults."""
    return load_settings(DEV_ENVIRON)


@pytest.fixture(scope="module")
def ctx(native_settings: Settings) -> StackContext:
    # Built directly: StackContext.from_settings may create the service user when run as root.
    return StackContext(
        settings=native_settings,
        state_dir=Path("/tmp/iconmarket-compose-test/state"),
        cache_dir=Path("/tmp/iconmarket-compose-test/cache"),
        run_as=RunAs(0, 0),
    )


def _service(compose: dict[str, Any], native_name: str) -> dict[str, Any]:
    service = compose["services"][COMPOSE_NAME[native_name]]
    assert isinstance(service, dict)
    return service


def _native(name: str) -> Service:
    return next(service for service in SERVICES if service.name == name)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host ip, host port) of every published port, short or long syntax."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("host_ip", "")), int(entry["published"])))
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        assert len(parts) == 3, f"port {entry!r} must be HOST_IP:HOST_PORT:CONTAINER_PORT"
        out.append((parts[0], int(parts[1])))
    return out


def _tag(service: dict[str, Any]) -> str:
    image = str(service["image"])
    assert ":" in image.rsplit("/", 1)[-1], f"image {image} must be pinned to a tag"
    return image.rsplit(":", 1)[1]


def test_compose_cli_accepts_the_file() -> None:
    cli = _compose_cli()
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, f"{' '.join(cli)} config rejected {COMPOSE_FILE}:\n" + (
        result.stdout + result.stderr
    )


def test_services_map_one_to_one_to_the_native_stack(compose: dict[str, Any]) -> None:
    assert set(COMPOSE_NAME) == {service.name for service in SERVICES}
    assert set(compose["services"]) - ONE_SHOT == set(COMPOSE_NAME.values())


def test_published_ports_are_the_native_ports_on_loopback_only(
    compose: dict[str, Any], ctx: StackContext
) -> None:
    extras = _extra_ports(ctx)
    for native in SERVICES:
        published = _published(_service(compose, native.name))
        expected = {native.port(ctx)} | extras.get(native.name, set())
        assert {port for _ip, port in published} == expected, native.name
    for name, service in compose["services"].items():
        for ip, port in _published(service):
            assert ip == "127.0.0.1", f"{name} publishes {port} on {ip or 'every interface'}"


def test_images_run_the_native_versions(compose: dict[str, Any]) -> None:
    postgres = _tag(_service(compose, "postgres"))
    assert postgres.split(".")[0] == "15"
    assert postgres.split(".")[0] == _native("postgres").version.split(".")[0]
    redis = _tag(_service(compose, "redis"))
    assert redis.split(".")[0] == _native("redis").version.split(".")[0] == "7"
    assert _service(compose, "kafka")["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert (
        _service(compose, "opensearch")["image"]
        == f"opensearchproject/opensearch:{OPENSEARCH_VERSION}"
    )
    assert _service(compose, "stripe-mock")["image"] == f"stripe/stripe-mock:{STRIPE_MOCK_VERSION}"
    assert _service(compose, "mailpit")["image"] == f"axllent/mailpit:{MAILPIT_VERSION}"
    assert _tag(_service(compose, "s3")).startswith("RELEASE.")
    assert _tag(compose["services"]["minio-init"]).startswith("RELEASE.")


def test_credentials_and_listeners_match_the_settings(
    compose: dict[str, Any], native_settings: Settings
) -> None:
    s = native_settings
    postgres = _environment(_service(compose, "postgres"))
    assert postgres["POSTGRES_USER"] == s.postgres_user
    assert postgres["POSTGRES_PASSWORD"] == s.postgres_password
    assert postgres["POSTGRES_DB"] == s.postgres_db

    minio = _environment(_service(compose, "s3"))
    assert minio["MINIO_ROOT_USER"] == s.s3_access_key
    assert minio["MINIO_ROOT_PASSWORD"] == s.s3_secret_key

    kafka = _environment(_service(compose, "kafka"))
    host_port = s.kafka_bootstrap.split(",")[0]
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{host_port}"
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    listeners = kafka["KAFKA_LISTENERS"].split(",")
    port = host_port.rsplit(":", 1)[1]
    assert f"PLAINTEXT://0.0.0.0:{port}" in listeners
    assert f"CONTROLLER://0.0.0.0:{s.kafka_controller_port}" in listeners
    assert kafka["KAFKA_NUM_PARTITIONS"] == str(s.kafka_partitions)

    opensearch = _environment(_service(compose, "opensearch"))
    assert opensearch["discovery.type"] == "single-node"
    assert opensearch["DISABLE_SECURITY_PLUGIN"] == "true"
    assert opensearch["DISABLE_INSTALL_DEMO_CONFIG"] == "true"
    heap = s.opensearch_heap
    assert opensearch["OPENSEARCH_JAVA_OPTS"] == f"-Xms{heap} -Xmx{heap}"


def test_every_service_is_health_checked_and_keeps_its_data(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name in COMPOSE_NAME.values():
        service = compose["services"][name]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        if name in VOLUMES:
            volume = VOLUMES[name]
            assert volume in declared, f"named volume {volume} is not declared"
            sources = {str(item).split(":", 1)[0] for item in service.get("volumes") or []}
            assert volume in sources, f"{name} does not mount {volume}"


def test_minio_init_creates_both_buckets_once_minio_is_healthy(
    compose: dict[str, Any], native_settings: Settings
) -> None:
    init = compose["services"]["minio-init"]
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}
    script = " ".join(str(part) for part in [*init.get("entrypoint", []), init.get("command", "")])
    for bucket in (native_settings.s3_bucket_private, native_settings.s3_bucket_public):
        assert f"mb --ignore-existing iconmarket/{bucket}" in script
    assert native_settings.s3_access_key in script
    assert native_settings.s3_secret_key in script


def test_mailpit_publishes_smtp_and_its_api_and_keeps_the_native_options(
    compose: dict[str, Any], native_settings: Settings
) -> None:
    service = _service(compose, "mailpit")
    http_port = int(native_settings.mailpit_url.rsplit(":", 1)[1])
    assert sorted(service["ports"]) == sorted(
        [f"127.0.0.1:{native_settings.smtp_port}:1025", f"127.0.0.1:{http_port}:8025"]
    )
    env = _environment(service)
    assert env["MP_DATABASE"].startswith("/data/")
    assert env["MP_MAX_MESSAGES"] == str(MAILPIT_MAX_MESSAGES)
    for flag in (
        "MP_SMTP_AUTH_ACCEPT_ANY",
        "MP_SMTP_AUTH_ALLOW_INSECURE",
        "MP_SMTP_DISABLE_RDNS",
        "MP_DISABLE_VERSION_CHECK",
    ):
        assert env[flag] == "true", flag
    assert env["MP_ALLOWED_HOSTS"] == "127.0.0.1"
    assert service["healthcheck"]["test"] == ["CMD", "/mailpit", "readyz"]
