"""The security headers every response carries (through the maintained `secure` package).

API responses are data, never a page: a Content-Security-Policy that allows nothing, no framing,
no MIME sniffing, no referrer. The interactive docs under /schema are pages that load their
scripts and styles from the CDN the OpenAPI plugins use, so they get a policy that allows
exactly that."""

from __future__ import annotations

from typing import Any

import secure
from secure.middleware.asgi import SecureASGIMiddleware

DOCS_PATH = "/schema"
DOCS_CDN = "https://cdn.jsdelivr.net"


def _common(csp: secure.ContentSecurityPolicy, frames: secure.XFrameOptions) -> secure.Secure:
    return secure.Secure(
        csp=csp,
        xfo=frames,
        xcto=secure.XContentTypeOptions(),
        referrer=secure.ReferrerPolicy().no_referrer(),
        hsts=secure.StrictTransportSecurity().max_age(31_536_000).include_subdomains(),
        coop=secure.CrossOriginOpenerPolicy().same_origin(),
        permissions=secure.PermissionsPolicy().geolocation().microphone().camera(),
    )


API_HEADERS = _common(
    secure.ContentSecurityPolicy().default_src("'none'").frame_ancestors("'none'"),
    secure.XFrameOptions().deny(),
)
DOCS_HEADERS = _common(
    secure.ContentSecurityPolicy()
    .default_src("'self'")
    .script_src("'self'", "'unsafe-inline'", DOCS_CDN)
    .style_src("'self'", "'unsafe-inline'", DOCS_CDN, "https://fonts.googleapis.com")
    .font_src("'self'", "data:", DOCS_CDN, "https://fonts.gstatic.com")
    .img_src("'self'", "data:", DOCS_CDN)
    .connect_src("'self'")
    .object_src("'none'")
    .frame_ancestors("'none'"),
    secure.XFrameOptions().deny(),
)


def security_headers_middleware(app: Any) -> Any:
    """Wrap ``app`` so that each HTTP response carries the API's or the docs' headers."""
    for_api = SecureASGIMiddleware(app, secure=API_HEADERS)
    for_docs = SecureASGIMiddleware(app, secure=DOCS_HEADERS)

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        chosen = for_docs if str(scope.get("path", "")).startswith(DOCS_PATH) else for_api
        await chosen(scope, receive, send)

    return middleware
