"""One mapping from errors to RFC 9457 problem+json responses, each with a stable `code`."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from api.freshness import PositionBeyondHead, StaleRead
from api.sessions import SessionsUnavailable
from commands.errors import (
    AccessDenied,
    AggregateNotFound,
    AlreadyExists,
    CommandDeadlineExceeded,
    CommandError,
    HashingBusy,
    IdempotencyKeyReused,
    ProductUnavailable,
    StoreUnavailable,
    Unauthenticated,
    VersionConflict,
    WeakPassword,
)
from commands.payments.port import (
    PaymentNotRefundable,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    WebhookRejected,
    WebhookUnsigned,
)
from domain.errors import (
    DomainError,
    Forbidden,
    Gone,
    IllegalTransition,
    InvalidValue,
    InvariantViolated,
    NotFound,
)
from infra.logs import request_id_var
from pipelines.errors import MediaRefused

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="iconmarket"'
log = logging.getLogger("iconmarket.api")


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"https://iconmarket.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def documentation_not_found(response: Response[Any]) -> Response[Any]:
    """An ``after_request`` hook: the documentation router's own 404 for an unknown path under
    ``/schema/`` is an HTML page; like every other error it becomes a problem document."""
    if response.status_code == 404 and response.media_type == MediaType.HTML:
        return problem(404, "not_found", "no documentation page at this path")
    return response


def _validation(_request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    return problem(422, "validation_failed", exc.detail, extra={"errors": errors})


def _http(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return problem(exc.status_code, code, exc.detail, headers=exc.headers)


def _unexpected(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "an unexpected error occurred; see the logs")


DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidValue, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (Gone, 410),
    (IllegalTransition, 409),
    (InvariantViolated, 409),
]
COMMAND_STATUS: dict[type[CommandError], int] = {
    AggregateNotFound: 404,
    AlreadyExists: 409,
    ProductUnavailable: 409,
    VersionConflict: 409,
    # The key's earlier use is state, not a fault of this request: a conflict.
    IdempotencyKeyReused: 409,
    WeakPassword: 422,
    AccessDenied: 403,
    Unauthenticated: 401,
    PaymentProviderRejected: 502,
    PaymentNotRefundable: 409,
    WebhookUnsigned: 401,
    WebhookRejected: 400,
}


def _domain(_request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = next((code for kind, code in DOMAIN_STATUS if isinstance(exc, kind)), 422)
    extra = {}
    if isinstance(exc, IllegalTransition):
        extra = {"from_state": exc.from_state, "to_state": exc.to_state}
    return problem(status, exc.code, exc.message, extra=extra)


def _command(_request: Request[Any, Any, Any], exc: CommandError) -> Response[Any]:
    status = next((code for kind, code in COMMAND_STATUS.items() if isinstance(exc, kind)), 400)
    challenge = getattr(exc, "challenge", BEARER_CHALLENGE)
    headers = {"WWW-Authenticate": challenge} if status == 401 else None
    return problem(status, exc.code, exc.message, headers=headers)


def _media(_request: Request[Any, Any, Any], exc: MediaRefused) -> Response[Any]:
    return problem(422, exc.code, exc.detail)


def _stale(_request: Request[Any, Any, Any], exc: StaleRead) -> Response[Any]:
    return problem(
        503,
        exc.code,
        str(exc),
        extra={"min_position": exc.wanted, "position": exc.reached},
        headers={"Retry-After": "1"},
    )


def _beyond_head(_request: Request[Any, Any, Any], exc: PositionBeyondHead) -> Response[Any]:
    # 409, not 422: the position is well formed; the log has not reached it.
    return problem(
        409, exc.code, str(exc), extra={"min_position": exc.wanted, "position": exc.head}
    )


def _provider_unavailable(
    _request: Request[Any, Any, Any], exc: PaymentProviderUnavailable
) -> Response[Any]:
    retry_after = str(exc.retry_after_s)
    return problem(503, exc.code, exc.message, headers={"Retry-After": retry_after})


def _command_timeout(
    _request: Request[Any, Any, Any], exc: CommandDeadlineExceeded
) -> Response[Any]:
    return problem(503, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


def _store_unavailable(_request: Request[Any, Any, Any], exc: StoreUnavailable) -> Response[Any]:
    return problem(503, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


def _sessions_unavailable(
    _request: Request[Any, Any, Any], exc: SessionsUnavailable
) -> Response[Any]:
    return problem(503, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


def _hashing_busy(_request: Request[Any, Any, Any], exc: HashingBusy) -> Response[Any]:
    return problem(503, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HashingBusy: _hashing_busy,
    SessionsUnavailable: _sessions_unavailable,
    PaymentProviderUnavailable: _provider_unavailable,
    CommandDeadlineExceeded: _command_timeout,
    StoreUnavailable: _store_unavailable,
    StaleRead: _stale,
    PositionBeyondHead: _beyond_head,
    MediaRefused: _media,
    DomainError: _domain,
    CommandError: _command,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
