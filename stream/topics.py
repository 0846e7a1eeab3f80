"""Kafka topics: one per bounded context, versioned in the name."""

from __future__ import annotations

CONTEXTS = ("catalog", "commerce", "identity")


def topic_for(context: str) -> str:
    if context not in CONTEXTS:
        raise ValueError(f"unknown bounded context {context!r}; known: {CONTEXTS}")
    return f"iconmarket.{context}.v1"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    topics = [topic_for(context) for context in CONTEXTS]
    return topics + [dead_letter_topic(topic) for topic in topics]
