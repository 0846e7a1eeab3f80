"""Errors of the command layer (domain errors pass through unchanged); each has a stable code."""

from __future__ import annotations


class CommandError(Exception):
    """Base of command-layer errors."""

    code = "command_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AggregateNotFound(CommandError):
    """The command names an aggregate that does not exist (or is of another type)."""

    code = "not_found"


class AlreadyExists(CommandError):
    """The aggregate the command would create exists already."""

    code = "already_exists"


class ProductUnavailable(CommandError):
    """The product is not for sale (unpublished, retired, or a set without a bundle price)."""

    code = "product_unavailable"


class VersionConflict(CommandError):
    """The aggregate changed since the version the caller expected, or a concurrent writer won."""

    code = "version_conflict"


class IdempotencyKeyReused(CommandError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_key_reused"


class WeakPassword(CommandError):
    """The password is too short to be accepted."""

    code = "weak_password"


class AccessDenied(CommandError):
    """The access policy refused the actor this action on this resource."""

    code = "forbidden"


class Unauthenticated(CommandError):
    """Credentials are missing, wrong or expired. ``message`` is what the caller is told (no
    more than that a valid credential is needed); ``reason`` says exactly what was wrong, for
    the logs and tests only."""

    code = "unauthenticated"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class CommandDeadlineExceeded(CommandError, TimeoutError):
    """The command did not complete within its deadline (the store is slow, down or stuck).

    When the bus had not yet taken it into a transaction it was dropped and nothing was applied;
    otherwise its outcome is unknown: retry with the same Idempotency-Key. A ``TimeoutError``, so
    consumers treat it as transient. Retry after ``retry_after_s`` seconds."""

    code = "command_timeout"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreUnavailable(CommandError, ConnectionError):
    """The event store could not be reached (down, restarting, its connections cut) and the
    command was not applied: retry after ``retry_after_s`` seconds. A ``ConnectionError``, so
    consumers treat it as transient."""

    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HashingBusy(CommandError):
    """Every password-hashing thread is busy and the queue for them is full: the login or
    registration was refused at once, nothing was done; retry after ``retry_after_s`` seconds."""

    code = "password_hashing_busy"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
