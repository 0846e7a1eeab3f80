"""JSON Schemas (draft 2020-12) of the public envelope, one per event type, generated from code.

Every event class nested in an aggregate is a type on the stream. Its ``data`` schema comes from
the class annotations, less the trace fields (they are envelope metadata) and the fields that
type never publishes (``REDACTED``). A new event, or a changed annotation, changes the schema:
``iconmarket schema export`` regenerates the checked-in files and a test fails while they differ.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.account import Account
from domain.cart import Cart
from domain.family import Family
from domain.icon import Icon
from domain.icon_import import IconImport
from domain.icon_set import IconSet
from domain.library import Library
from domain.order import Order
from domain.traced_aggregate import TracedAggregate
from domain.transaction import PaymentIntentLink, Transaction
from stream.envelope import ENVELOPE_VERSION, REDACTED, TRACE_FIELDS
from stream.topics import CONTEXTS, topic_for

JsonSchema = dict[str, Any]
DIALECT = "https://json-schema.org/draft/2020-12/schema"

AGGREGATES: Mapping[str, tuple[type[TracedAggregate], ...]] = {
    "catalog": (Family, IconSet, Icon, IconImport),
    "commerce": (Cart, Order, Transaction, PaymentIntentLink, Library),
    "identity": (Account,),
}

_SCALARS: Mapping[object, JsonSchema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
}
_NULL: JsonSchema = {"type": "null"}


@dataclass(frozen=True)
class EventType:
    """One type on the stream: ``Icon.Published`` of aggregate ``Icon`` in context ``catalog``."""

    name: str
    context: str
    aggregate: str
    schema_version: int
    event_class: type[TracedAggregate.Event]


def declared_events(aggregate: type[TracedAggregate]) -> list[type[TracedAggregate.Event]]:
    """The event classes declared in the aggregate's body, in declaration order.

    eventsourcing re-derives each declared class (keeping it as a base with the same qualified
    name) and adds its own ``Event`` base and, when the creation event has another name
    (``Cart.Opened``), an unused ``Created``; those two have no such declared original.
    """
    return [
        value
        for value in vars(aggregate).values()
        if isinstance(value, type)
        and issubclass(value, TracedAggregate.Event)
        and any(base.__qualname__ == value.__qualname__ for base in value.__mro__[1:])
    ]


def event_types() -> list[EventType]:
    """Every event type of every aggregate, sorted by name."""
    found = [
        EventType(
            name=event_class.__qualname__,
            context=context,
            aggregate=aggregate.__name__,
            schema_version=int(getattr(event_class, "class_version", 1)),
            event_class=event_class,
        )
        for context, aggregates in AGGREGATES.items()
        for aggregate in aggregates
        for event_class in declared_events(aggregate)
    ]
    return sorted(found, key=lambda event_type: event_type.name)


def event_types_by_context() -> dict[str, list[str]]:
    """The event type names published on each context's topic, sorted."""
    listing: dict[str, list[str]] = {context: [] for context in CONTEXTS}
    for event_type in event_types():
        listing[event_type.context].append(event_type.name)
    return listing


def data_fields(event_class: type[TracedAggregate.Event]) -> dict[str, Any]:
    """The published fields of an event class and their annotations, in declaration order."""
    hidden = TRACE_FIELDS | REDACTED.get(event_class.__qualname__, frozenset())
    hints = typing.get_type_hints(event_class, include_extras=True)
    return {
        name: hint
        for name, hint in hints.items()
        if name not in hidden and typing.get_origin(hint) is not typing.ClassVar
    }


class Definitions:
    """The ``$defs`` of one schema: each TypedDict once, referenced by its class name."""

    def __init__(self) -> None:
        self.schemas: dict[str, JsonSchema] = {}
        self._owners: dict[str, object] = {}

    def ref(self, typed_dict: Any) -> JsonSchema:
        name = typed_dict.__name__
        owner = self._owners.setdefault(name, typed_dict)
        if owner is not typed_dict:
            raise TypeError(f"two different TypedDicts are named {name}")
        if name not in self.schemas:
            self.schemas[name] = {}  # registered first, so a recursive TypedDict terminates
            self.schemas[name] = _typed_dict_schema(typed_dict, self)
        return {"$ref": f"#/$defs/{name}"}


def type_schema(hint: Any, defs: Definitions) -> JsonSchema:
    """The JSON Schema of a value annotated ``hint``; TypedDicts are added to ``defs``."""
    origin = typing.get_origin(hint)
    if origin is None:
        return _class_schema(hint, defs)
    return _generic_schema(hint, origin, typing.get_args(hint), defs)


def _generic_schema(hint: Any, origin: Any, args: tuple[Any, ...], defs: Definitions) -> JsonSchema:
    if origin in (typing.Annotated, typing.Required, typing.NotRequired):
        return type_schema(args[0], defs)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        nullable = [_NULL] if len(members) < len(args) else []
        return {"anyOf": [type_schema(arg, defs) for arg in members] + nullable}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, set, frozenset) or (origin is tuple and args[1:] == (Ellipsis,)):
        return {"type": "array", "items": type_schema(args[0], defs)}
    if origin is dict and args[0] is str:
        return {"type": "object", "additionalProperties": type_schema(args[1], defs)}
    raise TypeError(f"no JSON Schema mapping for the annotation {hint!r}")


def _class_schema(hint: Any, defs: Definitions) -> JsonSchema:
    if typing.is_typeddict(hint):
        return defs.ref(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema(hint)
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    raise TypeError(f"no JSON Schema mapping for the annotation {hint!r}")


def _typed_dict_schema(typed_dict: Any, defs: Definitions) -> JsonSchema:
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    schema: JsonSchema = {
        "type": "object",
        "title": typed_dict.__name__,
        "properties": {key: type_schema(value, defs) for key, value in hints.items()},
        "required": sorted(typed_dict.__required_keys__),
        "additionalProperties": False,
    }
    if typed_dict.__doc__:
        schema["description"] = typed_dict.__doc__.strip()
    return schema


def _enum_schema(enum_class: type[enum.Enum]) -> JsonSchema:
    values = [member.value for member in enum_class]
    if all(isinstance(value, str) for value in values):
        return {"type": "string", "enum": values}
    if all(type(value) is int for value in values):
        return {"type": "integer", "enum": values}
    raise TypeError(f"enum {enum_class.__name__} mixes value types")


def data_schema(event_class: type[TracedAggregate.Event], defs: Definitions) -> JsonSchema:
    fields = data_fields(event_class)
    return {
        "type": "object",
        "properties": {name: type_schema(hint, defs) for name, hint in fields.items()},
        "required": sorted(fields),
        "additionalProperties": False,
    }


def _envelope_properties(
    *, kind: JsonSchema, context: JsonSchema, aggregate_type: JsonSchema, schema_version: JsonSchema
) -> dict[str, JsonSchema]:
    return {
        "envelope_version": {
            "type": "integer",
            "const": ENVELOPE_VERSION,
            "description": "Version of the envelope itself; a breaking change gets new topics.",
        },
        "event_id": {
            "type": "string",
            "format": "uuid",
            "description": "uuid5 of aggregate id and version: the same on a redelivery. "
            "Deduplicate on it.",
        },
        "type": {**kind, "description": "The event type, Aggregate.Event."},
        "schema_version": {
            **schema_version,
            "description": "Version of this event type's data schema.",
        },
        "context": {**context, "description": "Bounded context (names the topic)."},
        "aggregate_type": {**aggregate_type, "description": "The aggregate's class name."},
        "aggregate_id": {
            "type": "string",
            "format": "uuid",
            "description": "The aggregate's id; also the Kafka message key.",
        },
        "aggregate_version": {
            "type": "integer",
            "minimum": 1,
            "description": "The aggregate's version after this event (1 = created).",
        },
        "position": {
            "type": "integer",
            "minimum": 1,
            "description": "Notification id in the context's event log (increasing, gaps allowed).",
        },
        "occurred_at": {
            "type": "string",
            "format": "date-time",
            "description": "When the event was recorded, UTC (RFC 3339).",
        },
        "actor": {"type": "string", "description": "Who issued the command."},
        "correlation_id": {
            "type": "string",
            "description": "The flow (request) the event belongs to.",
        },
        "causation_id": {
            "anyOf": [{"type": "string"}, _NULL],
            "description": "The message that caused this event, when known.",
        },
    }


def _object(properties: dict[str, JsonSchema]) -> JsonSchema:
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }


def event_schema(event_type: EventType) -> JsonSchema:
    """The whole envelope of one event type, with ``data`` described field by field."""
    defs = Definitions()
    properties = _envelope_properties(
        kind={"type": "string", "const": event_type.name},
        context={"type": "string", "const": event_type.context},
        aggregate_type={"type": "string", "const": event_type.aggregate},
        schema_version={"type": "integer", "const": event_type.schema_version},
    )
    properties["data"] = {
        **data_schema(event_type.event_class, defs),
        "description": "The event's fields.",
    }
    schema: JsonSchema = {
        "$schema": DIALECT,
        "$id": f"urn:iconmarket:event:{event_type.name}:{event_type.schema_version}",
        "title": f"{event_type.name} v{event_type.schema_version}",
        "description": f"The envelope of a {event_type.name} event on the Kafka topic "
        f"{topic_for(event_type.context)} (key: aggregate_id).",
        **_object(properties),
    }
    if defs.schemas:
        schema["$defs"] = defs.schemas
    return schema


def envelope_schema() -> JsonSchema:
    """Any envelope, whatever its type: what every consumer may rely on before dispatching."""
    names = [event_type.name for event_type in event_types()]
    properties = _envelope_properties(
        kind={"type": "string", "enum": names},
        context={"type": "string", "enum": list(CONTEXTS)},
        aggregate_type={"type": "string", "enum": sorted({name.split(".")[0] for name in names})},
        schema_version={"type": "integer", "minimum": 1},
    )
    properties["data"] = {
        "type": "object",
        "description": "The event's fields: see the schema of its type, schemas/<type>.json.",
    }
    return {
        "$schema": DIALECT,
        "$id": f"urn:iconmarket:envelope:{ENVELOPE_VERSION}",
        "title": f"iconmarket event envelope v{ENVELOPE_VERSION}",
        "description": "One event as published on iconmarket.<context>.v1 (JSON, UTF-8).",
        **_object(properties),
    }


def render_json(schema: JsonSchema) -> str:
    """Deterministic text of a schema: sorted keys, two-space indent, final newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
