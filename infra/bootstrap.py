"""The one composition root: builds every client and adapter from one `Settings` object.

Nothing here connects at import time; clients are created on first use and closed by `close()`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from infra.settings import Settings, load_settings

if TYPE_CHECKING:
    import redis
    import stripe
    from psycopg_pool import ConnectionPool

    from api.auth import TokenService
    from api.sessions import Sessions
    from commands.applications import Applications
    from commands.bus import CommandBus
    from commands.password_hashing import PasswordHashing
    from commands.payments.port import PaymentProvider
    from commands.payments.service import PaymentService
    from infra.audit.access import AuditApplication
    from pipelines.derivatives import MediaStores
    from pipelines.import_batch import ZipImporter
    from pipelines.object_store import S3ObjectStore
    from pipelines.svg_ingest import SvgIngestion


class Container:
    """Lazily built clients for one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    @cached_property
    def postgres_pool(self) -> ConnectionPool:
        from psycopg_pool import ConnectionPool

        s = self.settings
        return ConnectionPool(
            s.postgres_dsn,
            min_size=1,
            max_size=s.postgres_pool_size,
            open=True,
            timeout=s.postgres_connect_timeout_s,
            name="iconmarket",
        )

    @cached_property
    def redis(self) -> redis.Redis:
        import redis as redis_lib
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # One immediate retry: a dropped pooled connection heals, a dead server shows at once.
        return redis_lib.Redis(
            **_redis_options(self.settings), max_connections=64, retry=Retry(NoBackoff(), 1)
        )

    @cached_property
    def redis_async(self) -> Any:
        """An asyncio Redis client for the API's queries, pooled for its concurrency."""
        import redis.asyncio as redis_async

        return redis_async.Redis(**_redis_options(self.settings), max_connections=256)

    @cached_property
    def opensearch(self) -> Any:
        from opensearchpy import OpenSearch

        return OpenSearch(
            hosts=[self.settings.opensearch_url],
            timeout=self.settings.health_timeout_s,
            max_retries=0,
        )

    @cached_property
    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        s = self.settings
        return boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint or None,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=s.health_timeout_s,
                read_timeout=10,
                retries={"max_attempts": 2},
            ),
        )

    @cached_property
    def private_store(self) -> S3ObjectStore:
        """The private bucket: originals, upload staging (``incoming/``) and paid derivatives."""
        from pipelines.object_store import S3ObjectStore

        return S3ObjectStore(self.s3, self.settings.s3_bucket_private)

    @cached_property
    def public_store(self) -> S3ObjectStore:
        """The public bucket: watermarked previews."""
        from pipelines.object_store import S3ObjectStore

        return S3ObjectStore(self.s3, self.settings.s3_bucket_public)

    @cached_property
    def svg_ingestion(self) -> SvgIngestion:
        """Sanitise-and-store of SVG uploads into the private bucket, recorded by command."""
        from pipelines.svg_ingest import SvgIngestion
        from pipelines.svg_policy import SvgLimits

        s = self.settings
        limits = SvgLimits(
            max_bytes=s.svg_max_bytes,
            max_elements=s.svg_max_elements,
            max_depth=s.svg_max_depth,
            max_dimension=s.svg_max_dimension,
            max_render_cost=s.svg_max_render_cost,
        )
        return SvgIngestion(
            self.applications, self.bus, self.private_store, limits, s.upload_url_ttl_s
        )

    @cached_property
    def zip_importer(self) -> ZipImporter:
        """Zip batch imports into a set, through `svg_ingestion`."""
        from pipelines.import_batch import ZipImporter
        from pipelines.zip_import import ZipLimits

        s = self.settings
        limits = ZipLimits(
            max_bytes=s.zip_max_bytes,
            max_entries=s.zip_max_entries,
            max_uncompressed_bytes=s.zip_max_uncompressed_bytes,
            max_ratio=s.zip_max_ratio,
        )
        return ZipImporter(self.svg_ingestion, limits, s.import_staged_ttl_s)

    @cached_property
    def stripe(self) -> stripe.StripeClient:
        import stripe as stripe_lib

        return stripe_lib.StripeClient(
            self.settings.stripe_secret_key,
            base_addresses={"api": self.settings.stripe_api_base},
            max_network_retries=2,
        )

    @cached_property
    def applications(self) -> Applications:
        from commands.applications import build_applications

        store = self.settings.event_store
        if store not in {"postgres", "memory"}:
            raise ValueError(f"ICONMARKET_EVENT_STORE must be postgres or memory, not {store!r}")
        return build_applications(self.settings if store == "postgres" else None)

    @cached_property
    def audit_application(self) -> AuditApplication:
        """The log of audit reads (``audit_events``), on the same store as the applications."""
        from infra.audit.access import build_audit_application

        store = self.settings.event_store
        return build_audit_application(self.settings if store == "postgres" else None)

    @cached_property
    def payment_provider(self) -> PaymentProvider:
        """Stripe (stripe-mock locally) behind the payment-provider port, with its breaker."""
        from infra.stripe_provider import build_stripe_provider

        return build_stripe_provider(self.settings)

    @cached_property
    def payments(self) -> PaymentService:
        """Paying and refunding orders through the bus and the payment provider."""
        from commands.payments.service import PaymentService

        return PaymentService(self.bus, self.payment_provider)

    @cached_property
    def bus(self) -> CommandBus:
        from commands.bus import CommandBus
        from commands.routes import ROUTES

        return CommandBus(
            self.applications,
            ROUTES,
            group_commit=self.settings.group_commit,
            deadline_s=self.settings.command_deadline_s,
        )

    def built_bus(self) -> CommandBus | None:
        """The bus if this process has built it (readiness reports its writers), else None."""
        bus: CommandBus | None = self.__dict__.get("bus")
        return bus

    @cached_property
    def tokens(self) -> TokenService:
        from api.auth import TokenService

        s = self.settings
        return TokenService(
            s.jwt_secret, access_ttl_s=s.jwt_access_ttl_s, refresh_ttl_s=s.jwt_refresh_ttl_s
        )

    @cached_property
    def sessions(self) -> Sessions:
        """Session checks, refresh-token rotation and logout, on Redis (api/sessions.py)."""
        from api.sessions import Sessions
        from commands.authentication import sessions_version_of

        s = self.settings
        import redis.asyncio as redis_async
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A client of its own: one immediate retry, so that a Redis that is down answers 503
        # at once instead of after the default client's backoff.
        def connect() -> Any:
            return redis_async.Redis(
                **_redis_options(s), max_connections=256, retry=Retry(NoBackoff(), 1)
            )

        return Sessions(
            connect,
            self.tokens,
            lambda account_id: sessions_version_of(self.applications, account_id),
            prefix=s.sessions_prefix,
            cache_s=s.sessions_cache_s,
            change_horizon_s=s.command_deadline_s + s.sessions_change_horizon_s,
        )

    @cached_property
    def password_hashing(self) -> PasswordHashing:
        """The bounded threads that hash and check passwords (never the command threads)."""
        from commands.password_hashing import PasswordHashing

        s = self.settings
        return PasswordHashing(s.password_hash_workers, s.password_hash_queue)

    def kafka_admin(self) -> Any:
        """A new Kafka admin client; the caller closes it."""
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id="iconmarket-admin",
            request_timeout_ms=int(self.settings.health_timeout_s * 1000),
        )

    def warm(self) -> None:
        """Build the clients (imports, config) up front so the first request pays nothing."""
        for name in ("redis", "opensearch", "s3", "stripe"):
            getattr(self, name)

    def close(self) -> None:
        self.__dict__.pop("zip_importer", None)
        hashing = self.__dict__.pop("password_hashing", None)
        if hashing is not None:
            hashing.close()
        self.__dict__.pop("svg_ingestion", None)
        bus = self.__dict__.pop("bus", None)
        if bus is not None:
            bus.close()
        apps = self.__dict__.pop("applications", None)
        if apps is not None:
            apps.close()
        audit = self.__dict__.pop("audit_application", None)
        if audit is not None:
            audit.close()
        for name in ("postgres_pool", "redis"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()
        self.__dict__.pop("opensearch", None)
        self.__dict__.pop("s3", None)
        self.__dict__.pop("private_store", None)
        self.__dict__.pop("public_store", None)
        self.__dict__.pop("stripe", None)
        self.__dict__.pop("payments", None)
        self.__dict__.pop("payment_provider", None)


def _redis_options(s: Settings) -> dict[str, Any]:
    """Where Redis is and how long to wait for it, for every client the container builds."""
    return {
        "host": s.redis_host,
        "port": s.redis_port,
        "socket_timeout": s.health_timeout_s,
        "socket_connect_timeout": s.health_timeout_s,
    }


def media_stores(settings: Settings) -> MediaStores:
    """The media stores of a process of its own (a batch re-render's worker): pass it as
    ``functools.partial(media_stores, settings)``, which pickles."""
    from pipelines.derivatives import MediaStores

    container = bootstrap(settings)
    return MediaStores(container.private_store, container.public_store)


def bootstrap(settings: Settings | None = None) -> Container:
    """Build the container for this process from ``settings`` (default: the environment)."""
    return Container(settings or load_settings())
