"""The problems the API answers with: one shared response component per status and the one
``Problem`` schema (api/errors.py makes the documents; `COMMAND_STATUS` names the codes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from api.errors import COMMAND_STATUS


def _codes(status: int) -> str:
    """The command errors' codes answered with ``status`` (from `api.errors.COMMAND_STATUS`)."""
    codes = sorted({kind.code for kind, mapped in COMMAND_STATUS.items() if mapped == status})
    return ", ".join(f"`{code}`" for code in codes)


@dataclass(frozen=True)
class Refusal:
    """One status the API refuses with: its shared response component."""

    status: int
    name: str
    description: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header name → description; every one of them is always sent."""


RETRY_AFTER = {"Retry-After": "Seconds after which the request may be retried."}
REFUSALS: Final[dict[int, Refusal]] = {
    refusal.status: refusal
    for refusal in (
        Refusal(
            400,
            "BadRequest",
            "The body is not well formed (not JSON, or a broken multipart form): `bad_request`; "
            "a webhook that is signed but is no event: `webhook_rejected`.",
        ),
        Refusal(
            401,
            "Unauthenticated",
            "A valid token (or credentials, or signature) is required: `unauthenticated` (also "
            "for a token issued before its account's last role change or block, or of a session "
            "that ended: logout, a reused refresh token), `webhook_rejected`.",
            {"WWW-Authenticate": "The authentication scheme to use."},
        ),
        Refusal(
            403,
            "Forbidden",
            "The access policy refuses the caller: " + _codes(403) + ", "
            "`roles_change_forbidden`, `privileged_role_change_forbidden`, "
            "`own_block_forbidden`, `not_entitled`.",
        ),
        Refusal(
            404,
            "NotFound",
            "No such resource (or no such path): " + _codes(404) + ", `not_in_cart`, "
            "`format_unavailable`.",
        ),
        Refusal(
            409,
            "Conflict",
            "The current state refuses the request: " + _codes(409) + ", `illegal_transition` "
            "(with `from_state`, `to_state`), `position_beyond_head` (`min_position` past the "
            "log's last event), the domain's other rules (`cart_closed`, `icon_retired`, ...).",
        ),
        Refusal(410, "Gone", "The cart expired after being left idle: `cart_expired`."),
        Refusal(
            413,
            "ContentTooLarge",
            "The body is larger than allowed: `request_entity_too_large`, `svg_too_large`, "
            "`zip_too_large`.",
        ),
        Refusal(
            415,
            "UnsupportedMediaType",
            "An upload of another media type: `unsupported_media_type`.",
        ),
        Refusal(
            422,
            "Unprocessable",
            "A parameter, header or body is invalid: `validation_failed` (with `errors`, one "
            "per field); or the domain refuses a value: " + _codes(422) + ", `invalid_choice`, "
            "`invalid_name`, `invalid_email`, ...; or an upload breaks an ingestion rule "
            "(`svg_*`, `zip_*`, `import_manifest_*`, docs/media.md).",
        ),
        Refusal(
            429,
            "RateLimited",
            "Over a rate-limit budget: `rate_limited` (with `policy`); nothing was done.",
            {
                **RETRY_AFTER,
                "RateLimit": "Units left and seconds until one comes back, per quota.",
                "RateLimit-Policy": "The quotas that applied.",
            },
        ),
        Refusal(
            502,
            "BadGateway",
            "The payment provider refused the request: `payment_provider_rejected`.",
        ),
        Refusal(
            503,
            "Unavailable",
            "Try again after `Retry-After`: `stale` (the read model did not reach "
            "`min_position` in time), `command_timeout`, `store_unavailable`, "
            "`password_hashing_busy`, `payment_provider_unavailable`, "
            "`rate_limiter_unavailable`, `sessions_unavailable` (the token's session cannot be "
            "checked: sessions fail closed).",
            RETRY_AFTER,
        ),
    )
}

_NULLABLE_INT = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document; `code` is stable, `detail` is for humans.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "description": "validation_failed: one entry per field at fault.",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "source": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
        "min_position": {"type": "integer"},
        "position": _NULLABLE_INT,
        "from_state": {"type": "string"},
        "to_state": {"type": "string"},
        "policy": {"type": "string"},
    },
    "required": ["type", "title", "status", "code", "detail"],
    "additionalProperties": False,
}
