"""The public event envelope on Kafka (a versioned contract for analysts and every consumer).

One JSON object per message; the routing fields are also Kafka headers. ``event_id`` is derived
from the aggregate id and version, so a redelivered event always has the same id: deduplicate on
it. Secrets and unneeded personal data never leave the event store (``REDACTED``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

ENVELOPE_VERSION = 1
EVENT_ID_NAMESPACE = uuid.UUID("8a3c2f55-1d8e-4c7b-9f0a-6b1e2d3c4f5a")

# Fields of the stored event that are envelope metadata, not data.
TRACE_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "actor",
        "correlation_id",
        "causation_id",
        "originator_topic",
    }
)
# Never published: password hashes, and e-mail addresses (analysts need neither).
REDACTED: dict[str, frozenset[str]] = {
    "Account.Registered": frozenset({"password_hash", "email"}),
    "Account.PasswordChanged": frozenset({"password_hash"}),
}


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One event as published. ``position`` is its notification id in its context's log."""

    envelope_version: int = ENVELOPE_VERSION
    event_id: str
    type: str
    schema_version: int
    context: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    position: int
    occurred_at: str
    actor: str
    correlation_id: str
    causation_id: str | None
    data: dict[str, Any]


def event_id_for(aggregate_id: uuid.UUID | str, version: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}:{version}"))


def event_type_of(event: object) -> str:
    """``Aggregate.Event`` (e.g. ``Icon.Published``): the nested class's qualified name."""
    return type(event).__qualname__


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def to_envelope(context: str, position: int, event: Any) -> Envelope:
    """Build the envelope of a stored domain event at ``position`` of ``context``'s log."""
    kind = event_type_of(event)
    hidden = TRACE_FIELDS | REDACTED.get(kind, frozenset())
    data = {key: value for key, value in vars(event).items() if key not in hidden}
    return Envelope(
        event_id=event_id_for(event.originator_id, event.originator_version),
        type=kind,
        schema_version=int(getattr(type(event), "class_version", 1)),
        context=context,
        aggregate_type=kind.split(".", 1)[0],
        aggregate_id=str(event.originator_id),
        aggregate_version=int(event.originator_version),
        position=position,
        occurred_at=_iso(event.timestamp),
        actor=str(getattr(event, "actor", "")),
        correlation_id=str(getattr(event, "correlation_id", "")),
        causation_id=getattr(event, "causation_id", None),
        data=data,
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode(payload: bytes) -> Envelope:
    return _decoder.decode(payload)


def headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    """The routing fields, as Kafka headers (so consumers can filter without parsing JSON)."""
    return [
        ("event_id", envelope.event_id.encode()),
        ("event_type", envelope.type.encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        ("context", envelope.context.encode()),
        ("aggregate_type", envelope.aggregate_type.encode()),
        ("aggregate_id", envelope.aggregate_id.encode()),
        ("aggregate_version", str(envelope.aggregate_version).encode()),
        ("position", str(envelope.position).encode()),
    ]


def key(envelope: Envelope) -> bytes:
    """Kafka key: the aggregate id, so one aggregate's events share a partition and stay ordered."""
    return envelope.aggregate_id.encode()
