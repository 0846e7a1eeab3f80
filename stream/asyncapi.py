"""The AsyncAPI 3.0 document of the event stream: servers, one channel per context topic, one
message per event type (its payload is the JSON Schema file of that type), the Kafka headers and
key, and the delivery guarantees. Generated from code like the schemas it references."""

from __future__ import annotations

from typing import Any

import yaml

from stream.envelope import ENVELOPE_VERSION
from stream.schemas import EventType, event_types
from stream.topics import CONTEXTS, topic_for

DEV_SERVER = "localhost:19092"
RETENTION_MS = 7 * 24 * 3600 * 1000  # as the local stack configures Kafka (log.retention.hours)
PAYLOAD_FORMAT = "application/schema+json;version=draft-2020-12"
KAFKA_BINDING_VERSION = "0.5.0"

GUARANTEES = """\
Every event recorded by iconmarket is published, once committed, to its bounded context's topic
by a relay that tails the event store's notification log (the outbox).

- **Ordering per aggregate.** The message key is the aggregate id, so all events of one aggregate
  land on one partition in version order (`aggregate_version` increases by one). There is no
  order across aggregates or topics; `position` orders one context's log, with gaps.
- **At least once.** A relay that crashes after Kafka acknowledged a batch but before it saved
  its position publishes that batch again. Duplicates are byte-identical and carry the same
  `event_id` (derived from aggregate id and version): deduplicate on `event_id`, or keep the
  highest `aggregate_version` applied per `aggregate_id`.
- **Versioned contract.** `envelope_version` versions the envelope, `schema_version` each event
  type's `data`. Compatible changes keep the topic; a breaking change is published on a new
  topic version (`iconmarket.<context>.v2`) alongside the old one.
- **Redaction.** Password hashes and e-mail addresses are never published.
"""

HEADERS: dict[str, str] = {
    "event_id": "The envelope's event_id (deduplicate on it).",
    "event_type": "The envelope's type, e.g. Icon.Published (filter without parsing JSON).",
    "schema_version": "The envelope's schema_version, as decimal text.",
    "context": "The envelope's context.",
    "aggregate_type": "The envelope's aggregate_type.",
    "aggregate_id": "The envelope's aggregate_id (also the message key).",
    "aggregate_version": "The envelope's aggregate_version, as decimal text.",
    "position": "The envelope's position, as decimal text.",
}
_DECIMAL_HEADERS = frozenset({"schema_version", "aggregate_version", "position"})


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _headers_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, description in HEADERS.items():
        header: dict[str, Any] = {"type": "string", "description": description}
        if name in _DECIMAL_HEADERS:
            header["pattern"] = "^[0-9]+$"
        properties[name] = header
    return {
        "type": "object",
        "description": "Kafka record headers, UTF-8 encoded.",
        "properties": properties,
        "required": list(HEADERS),
    }


def _envelope_trait() -> dict[str, Any]:
    return {
        "contentType": "application/json",
        "headers": _ref("components", "schemas", "EnvelopeHeaders"),
        "correlationId": {
            "description": "The flow (request) that produced the event.",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The aggregate id: one aggregate's events share a partition.",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _message(event_type: EventType, schema_dir: str) -> dict[str, Any]:
    return {
        "name": event_type.name,
        "title": f"{event_type.name} v{event_type.schema_version}",
        "summary": f"A {event_type.aggregate} event of the {event_type.context} context.",
        "payload": {
            "schemaFormat": PAYLOAD_FORMAT,
            "schema": {"$ref": f"{schema_dir}/{event_type.name}.json"},
        },
        "traits": [_ref("components", "messageTraits", "envelope")],
    }


def _channel(context: str, names: list[str]) -> dict[str, Any]:
    return {
        "address": topic_for(context),
        "title": f"{context} events",
        "description": f"Every event of the {context} context, keyed by aggregate id.",
        "messages": {name: _ref("components", "messages", name) for name in names},
        "bindings": {
            "kafka": {
                "topic": topic_for(context),
                "topicConfiguration": {
                    "cleanup.policy": ["delete"],
                    "retention.ms": RETENTION_MS,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _operation(context: str, names: list[str]) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": _ref("channels", context),
        "title": f"Publish the {context} events",
        "summary": f"The relay publishes each committed {context} event (acks=all).",
        "messages": [_ref("channels", context, "messages", name) for name in names],
    }


def asyncapi_document(schema_dir: str = "./schemas") -> dict[str, Any]:
    """The document; payloads reference ``{schema_dir}/<type>.json`` relative to it."""
    types = event_types()
    by_context = {context: [t.name for t in types if t.context == context] for context in CONTEXTS}
    return {
        "asyncapi": "3.0.0",
        "id": "urn:iconmarket:events",
        "info": {
            "title": "iconmarket event stream",
            "version": f"{ENVELOPE_VERSION}.0.0",
            "description": GUARANTEES,
        },
        "defaultContentType": "application/json",
        "servers": {
            "development": {
                "host": DEV_SERVER,
                "protocol": "kafka",
                "description": "The local stack (`iconmarket stack up`), plaintext.",
            }
        },
        "channels": {context: _channel(context, names) for context, names in by_context.items()},
        "operations": {
            f"publish_{context}": _operation(context, names)
            for context, names in by_context.items()
        },
        "components": {
            "schemas": {"EnvelopeHeaders": _headers_schema()},
            "messageTraits": {"envelope": _envelope_trait()},
            "messages": {t.name: _message(t, schema_dir) for t in types},
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line text as literal blocks, so the descriptions read as written."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def render_yaml(document: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, block style."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
