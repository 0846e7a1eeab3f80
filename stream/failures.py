"""Failure classes: the one place that decides whether a failed effect is worth waiting for.

*Transient*: a dependency is down or slow (PostgreSQL, Redis, OpenSearch, S3, Kafka, Stripe).
The same input will succeed once it is back, so the consumer runner backs off and retries
without limit and never dead-letters. *Poison*: the input itself can never succeed (it does not
decode, or the handler's own rules refuse it); it is parked with its key's later events.

An error is transient when it, or any error in its ``__cause__`` / ``__context__`` chain, is of
a transient kind: a handler that wraps a connection failure in its own error (the media worker's
``RenderFailed``) is still classified by what went wrong underneath.

Rendering (`pipelines.render_pool`) is the case where "slow" can be either. A render pass past
its CPU-time deadline is **poison** (``RenderTimedOut`` is deliberately not a `TimeoutError`):
CPU time does not grow because the machine is busy, so the same file would time out again, and
the media worker quarantines the icon instead of retrying it. So are a renderer error and a
renderer crash (SIGSEGV and the like). What the machine does to a render process is
**transient** (``RenderProcessLost``, ``RenderStalled`` are `TransientError`s): killed from
outside (the OOM killer, an operator, a shutdown), or starved of CPU past its wall-clock limit.
A render process's memory is capped, so a drawing that needs too much fails as a renderer
error (poison) before the OOM killer could make it look transient.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HTTP_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
S3_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "XMinioServerNotInitialized",
        "XMinioStorageFull",
    }
)


class Failure(enum.Enum):
    TRANSIENT = "transient"
    POISON = "poison"


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``failures``: ``initial_s * factor**(failures-1)``, capped."""

    initial_s: float = 0.1
    factor: float = 2.0
    max_s: float = 2.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))


class TransientError(Exception):
    """Raised by a handler when the failure is not the input's fault (a view store is down)."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_transient(error: BaseException) -> bool:
    return any(check(error) for check in _CHECKS)


def classify(error: BaseException) -> Failure:
    """`Failure.TRANSIENT` if anything in ``error``'s chain is a dependency failure, else poison."""
    if any(_is_transient(link) for link in _chain(error)):
        return Failure.TRANSIENT
    return Failure.POISON


def is_transient(error: BaseException) -> bool:
    return classify(error) is Failure.TRANSIENT


def _own(error: BaseException) -> bool:
    from commands.payments.port import PaymentProviderUnavailable
    from stream.producer import PublishError

    return isinstance(
        error,
        TransientError | PublishError | PaymentProviderUnavailable | ConnectionError | TimeoutError,
    )


def _postgres(error: BaseException) -> bool:
    import psycopg
    from eventsourcing import persistence

    return isinstance(
        error,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | persistence.OperationalError
        | persistence.InterfaceError
        | persistence.ConnectionUnavailableError,
    )


def _redis(error: BaseException) -> bool:
    from redis import exceptions

    return isinstance(
        error,
        exceptions.ConnectionError
        | exceptions.TimeoutError
        | exceptions.BusyLoadingError
        | exceptions.TryAgainError
        | exceptions.ReadOnlyError,
    )


def _opensearch(error: BaseException) -> bool:
    from opensearchpy import exceptions

    if isinstance(error, exceptions.ConnectionError):  # includes timeouts
        return True
    if isinstance(error, exceptions.TransportError):
        return error.status_code in HTTP_TRANSIENT_STATUSES or error.status_code == "N/A"
    return False


def _s3(error: BaseException) -> bool:
    from botocore import exceptions

    if isinstance(error, exceptions.ConnectionError | exceptions.HTTPClientError):
        return True
    if isinstance(error, exceptions.ClientError):
        response: dict[str, dict[str, object]] = error.response  # type: ignore[assignment]
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = response.get("Error", {}).get("Code")
        return status in HTTP_TRANSIENT_STATUSES or code in S3_TRANSIENT_CODES
    return False


def _kafka(error: BaseException) -> bool:
    from confluent_kafka import KafkaError, KafkaException
    from kafka import errors

    if isinstance(error, KafkaException) and error.args:
        reason = error.args[0]
        if isinstance(reason, KafkaError):
            return bool(reason.retriable() or reason.code() in _KAFKA_TRANSIENT_CODES)
    if isinstance(error, errors.KafkaError):
        return bool(getattr(error, "retriable", False)) or isinstance(
            error, errors.KafkaTimeoutError | errors.NoBrokersAvailable
        )
    return False


def _kafka_transient_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError

    return frozenset(
        {
            KafkaError._TRANSPORT,
            KafkaError._TIMED_OUT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._MSG_TIMED_OUT,
            KafkaError.REQUEST_TIMED_OUT,
            KafkaError.NOT_COORDINATOR,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        }
    )


def _stripe(error: BaseException) -> bool:
    import stripe

    return isinstance(error, stripe.APIConnectionError | stripe.RateLimitError)


_KAFKA_TRANSIENT_CODES = _kafka_transient_codes()
_CHECKS: tuple[Callable[[BaseException], bool], ...] = (
    _own,
    _postgres,
    _redis,
    _opensearch,
    _s3,
    _kafka,
    _stripe,
)
