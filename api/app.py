"""The Litestar application: built from a `Container`, never at import time."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig

from api.contract import document, exact_parameters
from api.controllers.audit import AuditController
from api.controllers.auth import AccountController, AuthController
from api.controllers.catalog import FamilyController, IconController, IconSetController
from api.controllers.commerce import CartController, FavouriteController, OrderController
from api.controllers.downloads import DownloadController
from api.controllers.me import MeController
from api.controllers.media import IconMediaController, ImportController
from api.controllers.payments import PaymentController, StripeWebhookController
from api.errors import EXCEPTION_HANDLERS, documentation_not_found
from api.health import HealthController, dependencies_for, metrics_controller
from api.middleware import request_id_middleware
from api.options import allow_middleware
from api.rate_limits import RateLimits, budget_of
from api.security_headers import security_headers_middleware
from infra.bootstrap import Container, bootstrap
from infra.logs import configure

API_VERSION = "0.1.0"


COMMAND_THREADS = 32


def _tune_gc() -> None:
    """Move everything built at startup out of the collector's sight, and collect young objects
    less often: each request allocates many short-lived objects (copies of cached aggregates),
    and frequent full collections over the aggregate cache showed as 100-400 ms latency spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _worker_threads() -> None:
    """Commands block on database round trips in threads; allow enough of them to overlap."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=COMMAND_THREADS, thread_name_prefix="command")
    )


def _metered(method: str, path: str, min_position: bool) -> bool:
    """Whether the rate limiter meters such a request (the contract documents its 429)."""
    return budget_of(method, path, min_position=min_position) is not None


def create_app(container: Container | None = None) -> Litestar:
    """Wire controllers, error mapping, metrics and OpenAPI around ``container``."""
    container = container or bootstrap()
    configure(container.settings.log_level)
    health_pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="health")
    prometheus = PrometheusConfig(
        app_name="iconmarket",
        prefix="iconmarket",
        group_path=True,
        exclude=["/metrics"],
    )

    limits = RateLimits(container.settings, container.tokens)

    async def shutdown() -> None:
        await limits.close()
        health_pool.shutdown(wait=False, cancel_futures=True)
        container.close()

    app = Litestar(
        route_handlers=[
            HealthController,
            metrics_controller(container.settings.metrics_token),
            AuthController,
            AccountController,
            MeController,
            FamilyController,
            IconSetController,
            IconController,
            DownloadController,
            IconMediaController,
            ImportController,
            CartController,
            OrderController,
            FavouriteController,
            PaymentController,
            StripeWebhookController,
            AuditController,
        ],
        dependencies=dependencies_for(container, health_pool),
        middleware=[
            prometheus.middleware,
            limits.middleware,
            allow_middleware,
            container.sessions.middleware,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=exact_parameters,
        after_request=documentation_not_found,
        state=State({"container": container}),  # for guards, which take no dependencies
        openapi_config=OpenAPIConfig(
            title="iconmarket API",
            version=API_VERSION,
            description="Event-sourced SVG icon marketplace. Errors are RFC 9457 problem+json "
            "documents with a stable `code`.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin(path="/scalar")],
        ),
        on_startup=[container.warm, _worker_threads, limits.start, _tune_gc],
        on_shutdown=[shutdown],
        logging_config=None,
        debug=False,
    )
    document(app, metered=_metered)
    # Outermost, so that requests no route matched (404, 405) get an id, the security headers
    # and a log line too.
    app.asgi_handler = request_id_middleware(security_headers_middleware(app.asgi_handler))
    return app


def app_factory() -> Litestar:
    """Entry point for uvicorn's --factory."""
    return create_app()
