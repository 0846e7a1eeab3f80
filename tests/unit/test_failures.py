"""Failure classes: which errors mean "a dependency is down" (wait) and which mean poison."""

from __future__ import annotations

import psycopg
import pytest
import redis
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from confluent_kafka import KafkaError, KafkaException
from eventsourcing import persistence
from opensearchpy import exceptions as os_errors

from commands.errors import StoreUnavailable, VersionConflict
from commands.payments.port import PaymentProviderUnavailable
from pipelines.media_worker import RenderFailed
from pipelines.render import RenderError
from pipelines.render_pool import RenderCrashed, RenderProcessLost, RenderStalled, RenderTimedOut
from stream.consumer import UndecodableMessage
from stream.failures import Failure, TransientError, classify
from stream.producer import PublishError


def _s3_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def _wrapped(error: Exception) -> RenderFailed:
    try:
        raise RenderFailed("icon 1: could not store the PNG") from error
    except RenderFailed as wrapped:
        return wrapped


TRANSIENT = [
    TransientError("view store down"),
    ConnectionRefusedError(111, "refused"),
    TimeoutError("timed out"),
    psycopg.OperationalError("server closed the connection unexpectedly"),
    persistence.OperationalError("terminating connection due to administrator command"),
    persistence.InterfaceError("connection already closed"),
    redis.ConnectionError("Error 111 connecting to 127.0.0.1:16379"),
    redis.TimeoutError("Timeout reading from socket"),
    redis.BusyLoadingError("Redis is loading the dataset in memory"),
    os_errors.ConnectionError("N/A", "connection refused", None),
    os_errors.ConnectionTimeout("TIMEOUT", "read timed out", None),
    os_errors.TransportError(503, "cluster_block_exception", None),
    os_errors.TransportError(429, "es_rejected_execution_exception", None),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:19000"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:19000"),
    _s3_error(503, "SlowDown"),
    _s3_error(500, "InternalError"),
    KafkaException(KafkaError(KafkaError._TRANSPORT)),
    KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)),
    PublishError("3 message(s) unacknowledged"),
    PaymentProviderUnavailable("Stripe is unavailable", retry_after_s=5),
    StoreUnavailable("the event store is unavailable; the command was not applied"),
    _wrapped(redis.ConnectionError("refused")),
    RenderProcessLost("the png-64 pass: its process was killed (SIGKILL)"),
    RenderStalled("the png-64 pass got 0.3 s of CPU time in 20 s: the machine is overloaded"),
    _wrapped(RenderStalled("starved")),
]

POISON = [
    ValueError("cannot apply offset 4"),
    KeyError("meta"),
    UndecodableMessage("not an envelope"),
    os_errors.TransportError(400, "mapper_parsing_exception", None),
    os_errors.NotFoundError(404, "index_not_found_exception", None),
    _s3_error(404, "NoSuchKey"),
    _s3_error(403, "AccessDenied"),
    persistence.IntegrityError("duplicate key value violates unique constraint"),
    persistence.DataError("invalid input syntax for type uuid"),
    KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
    VersionConflict("a concurrent command changed the aggregate first"),
    RenderFailed("icon 1: cairo: invalid SVG"),
    RenderTimedOut("the png-64 pass used more than 5 s of CPU time"),
    RenderError("unreadable SVG: not well-formed"),
    RenderCrashed("the png-64 pass crashed the renderer (SIGSEGV)"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_a_dependency_failure_is_transient(error: Exception) -> None:
    assert classify(error) is Failure.TRANSIENT


@pytest.mark.parametrize("error", POISON, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_an_input_failure_is_poison(error: Exception) -> None:
    assert classify(error) is Failure.POISON


def test_a_cycle_in_the_cause_chain_ends_the_walk() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert classify(first) is Failure.POISON


def test_a_size_refusal_is_read_from_the_error_codes_not_the_text() -> None:
    from stream.producer import refused_for_size

    assert refused_for_size(PublishError("1 failed", (KafkaError.MSG_SIZE_TOO_LARGE,)))
    assert refused_for_size(KafkaException(KafkaError(KafkaError.RECORD_LIST_TOO_LARGE)))
    assert not refused_for_size(PublishError("1 failed: code=MSG_SIZE_TOO_LARGE"))
    assert not refused_for_size(PublishError("timed out", (KafkaError._MSG_TIMED_OUT,)))
