"""One eventsourcing Application (and one events table) per bounded context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from uuid import UUID

from eventsourcing.application import Application

from infra.settings import Settings

POSTGRES_FACTORY = "commands.persistence:IdempotentPostgresFactory"
POPO_FACTORY = "commands.persistence:IdempotentPopoFactory"


class ContextApplication(Application[UUID]):
    """Base of the three applications; ``context`` names the bounded context and Kafka topic."""

    context: ClassVar[str]


class CatalogApplication(ContextApplication):
    name = "Catalog"
    context = "catalog"


class CommerceApplication(ContextApplication):
    name = "Commerce"
    context = "commerce"


class IdentityApplication(ContextApplication):
    name = "Identity"
    context = "identity"


def persistence_env(settings: Settings | None) -> dict[str, str]:
    """The eventsourcing environment: PostgreSQL from ``settings``, or in memory when None.

    POSTGRES_ENABLE_DB_FUNCTIONS is deliberately never set: it drops the table lock that keeps
    notification ids in commit order, and the relay would then miss events.
    """
    common = {"AGGREGATE_CACHE_MAXSIZE": "10000", "AGGREGATE_CACHE_FASTFORWARD": "y"}
    if settings is None:
        return {**common, "PERSISTENCE_MODULE": POPO_FACTORY}
    return {
        **common,
        "PERSISTENCE_MODULE": POSTGRES_FACTORY,
        "POSTGRES_DBNAME": settings.postgres_db,
        "POSTGRES_HOST": settings.postgres_host,
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_USER": settings.postgres_user,
        "POSTGRES_PASSWORD": settings.postgres_password,
        "POSTGRES_CONNECT_TIMEOUT": str(settings.postgres_connect_timeout_s),
        "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout_s),
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_pool_size),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        "CREATE_TABLE": "y",
    }


@dataclass(frozen=True)
class Applications:
    catalog: CatalogApplication
    commerce: CommerceApplication
    identity: IdentityApplication

    def by_context(self, context: str) -> ContextApplication:
        app: ContextApplication = getattr(self, context)
        return app

    def all(self) -> tuple[ContextApplication, ...]:
        return (self.catalog, self.commerce, self.identity)

    def close(self) -> None:
        for app in self.all():
            app.close()


def build_applications(settings: Settings | None) -> Applications:
    """PostgreSQL-backed applications from ``settings``; in memory when ``settings`` is None."""
    env = persistence_env(settings)
    return Applications(
        catalog=CatalogApplication(env=env),
        commerce=CommerceApplication(env=env),
        identity=IdentityApplication(env=env),
    )
