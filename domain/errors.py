"""The domain error tree: every error carries a stable ``code`` for clients and problem+json."""

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every stable error code the domain can raise (the public catalogue)."""

    ACTOR_REQUIRED = "actor_required"
    CORRELATION_ID_REQUIRED = "correlation_id_required"
    INVALID_MONEY = "invalid_money"
    INVALID_CURRENCY = "invalid_currency"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_NAME = "invalid_name"
    INVALID_LABEL = "invalid_label"
    INVALID_SVG_ORIGINAL = "invalid_svg_original"
    INVALID_DERIVATIVE = "invalid_derivative"
    INVALID_RENDER_REFUSAL = "invalid_render_refusal"
    INVALID_ICON_VERSION = "invalid_icon_version"
    INVALID_ATTEMPT = "invalid_attempt"
    INVALID_PROVIDER = "invalid_provider"
    INVALID_DOWNLOAD = "invalid_download"
    INVALID_EMAIL = "invalid_email"
    INVALID_PASSWORD_HASH = "invalid_password_hash"  # noqa: S105 - an error code
    INVALID_CHOICE = "invalid_choice"
    ROLES_EMPTY = "roles_empty"
    ILLEGAL_TRANSITION = "illegal_transition"
    ICON_NOT_PUBLISHABLE = "icon_not_publishable"
    ICON_RETIRED = "icon_retired"
    ORIGINAL_ALREADY_RECORDED = "original_already_recorded"
    ORIGINAL_MISSING = "original_missing"
    SVG_UNCHANGED = "svg_unchanged"
    STALE_DERIVATIVES = "stale_derivatives"
    DERIVATIVES_EMPTY = "derivatives_empty"
    INVALID_PREVIEW = "invalid_preview"
    FORMAT_UNAVAILABLE = "format_unavailable"
    CART_CLOSED = "cart_closed"
    CART_EXPIRED = "cart_expired"
    CART_NOT_IDLE = "cart_not_idle"
    INVALID_IDLE_TIME = "invalid_idle_time"
    CART_EMPTY = "cart_empty"
    ALREADY_IN_CART = "already_in_cart"
    NOT_IN_CART = "not_in_cart"
    ORDER_EMPTY = "order_empty"
    DUPLICATE_ORDER_LINE = "duplicate_order_line"
    TRANSACTION_MISMATCH = "transaction_mismatch"
    ALREADY_GRANTED = "already_granted"
    ENTITLEMENTS_EMPTY = "entitlements_empty"
    NO_ENTITLEMENTS_FOR_ORDER = "no_entitlements_for_order"
    ALREADY_REVOKED = "already_revoked"
    NOT_ENTITLED = "not_entitled"
    ROLES_CHANGE_FORBIDDEN = "roles_change_forbidden"
    PRIVILEGED_ROLE_CHANGE_FORBIDDEN = "privileged_role_change_forbidden"
    OWN_BLOCK_FORBIDDEN = "own_block_forbidden"


class DomainError(Exception):
    """Base of every domain error.

    ``code`` is stable (clients and the HTTP error mapping rely on it); ``message`` is for humans.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: str = code.value
        self.message = message


class InvalidValue(DomainError):
    """A value given to the domain is malformed (bad money, e-mail, name, media record...)."""


class InvariantViolated(DomainError):
    """The command is well formed but would break a business rule of the aggregate."""


class IllegalTransition(DomainError):
    """A state machine was asked for a move its transition table does not allow.

    The code is always ``illegal_transition``; ``from_state`` and ``to_state`` say which move.
    """

    def __init__(self, aggregate: str, from_state: str, to_state: str) -> None:
        super().__init__(
            ErrorCode.ILLEGAL_TRANSITION,
            f"{aggregate} cannot go from {from_state!r} to {to_state!r}",
        )
        self.from_state = from_state
        self.to_state = to_state


class NotFound(DomainError):
    """Something the command refers to is not part of the aggregate (a cart line, a grant)."""


class Gone(DomainError):
    """The aggregate exists but has ended for good and refuses every change (an expired cart)."""


class Forbidden(DomainError):
    """The actor may not do this: missing roles or missing entitlement."""
