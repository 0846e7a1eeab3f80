"""OPTIONS answers with every method its path serves.

Litestar 2 makes a path's OPTIONS handler when the path's first handler is registered and keeps
it when more handlers join the path, so its ``Allow`` lists only the methods known then
(litestar#4169, fixed in Litestar 3): ``/v1/families/{id}`` answered ``Allow: OPTIONS, PATCH``
though it serves GET too. This middleware sets ``Allow`` from the path's final route."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def allowed_methods(app: Any) -> dict[str, str]:
    """Each HTTP path template of ``app`` → its ``Allow`` value."""
    return {
        route.path_format: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }


def allow_middleware(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: an OPTIONS answer's ``Allow`` names every method of its path."""
    allowed: dict[str, str] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "OPTIONS":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        if not allowed:
            allowed.update(allowed_methods(scope["litestar_app"]))
        methods = allowed.get(str(scope.get("path_template")))

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and methods is not None:
                MutableScopeHeaders.from_message(message)["Allow"] = methods
            await send(message)

        await app(scope, receive, send_allow)

    return middleware
