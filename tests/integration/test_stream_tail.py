"""`iconmarket stream tail` against real Kafka: it prints the envelopes exactly as published,
filtered by the event_type header, and stops at --limit or after --timeout idle seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer
from kafka.admin import NewTopic

from domain.icon import Icon
from domain.money import Money
from infra.bootstrap import Container
from infra.settings import REPO_ROOT
from stream.envelope import Envelope, encode, headers, key, to_envelope
from tests.support import wait_for_topic_leaders

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(container: Container) -> Iterator[str]:
    name = f"test.stream-tail.{uuid.uuid4().hex[:10]}"
    admin = container.kafka_admin()
    admin.create_topics([NewTopic(name, 3, 1)], timeout_ms=10_000)
    wait_for_topic_leaders(container.settings.kafka_bootstrap, name, 3)
    try:
        yield name
    finally:
        admin.delete_topics([name], timeout_ms=10_000)
        admin.close()


def _icon_envelopes() -> list[Envelope]:
    """Icon.Created then two Icon.PriceChanged: one aggregate, so one partition, in order."""
    trace = {"actor": "carol", "correlation_id": "corr-tail"}
    icon = Icon.create(
        set_id=uuid.uuid4(),
        family_id=uuid.uuid4(),
        owner_id="carol",
        name="arrow",
        price=Money(500, "USD"),
        **trace,
    )
    icon.change_price(price=Money(700, "USD"), **trace)
    icon.change_price(price=Money(900, "USD"), **trace)
    return [
        to_envelope("catalog", position, event)
        for position, event in enumerate(icon.collect_events(), start=41)
    ]


def _publish(container: Container, topic: str, envelopes: list[Envelope]) -> None:
    producer = KafkaProducer(bootstrap_servers=container.settings.kafka_bootstrap, acks="all")
    try:
        for envelope in envelopes:
            producer.send(
                topic, value=encode(envelope), key=key(envelope), headers=headers(envelope)
            ).get(timeout=10)
    finally:
        producer.close()


def _tail(topic: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "stream", "tail", "--topic", topic, *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def published(container: Container, topic: str) -> list[str]:
    envelopes = _icon_envelopes()
    _publish(container, topic, envelopes)
    return [encode(envelope).decode() for envelope in envelopes]


def test_tail_prints_only_the_chosen_type_up_to_the_limit(topic: str, published: list[str]) -> None:
    done = _tail(
        topic,
        "--from-beginning",
        "--type",
        "Icon.PriceChanged",
        "--limit",
        "2",
        "--timeout",
        "10",
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == published[1:]


def test_tail_prints_every_chosen_type_in_aggregate_order(topic: str, published: list[str]) -> None:
    done = _tail(
        topic,
        "--from-beginning",
        "--type",
        "Icon.Created",
        "--type",
        "Icon.PriceChanged",
        "--limit",
        "3",
        "--timeout",
        "10",
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == published
    assert [json.loads(line)["type"] for line in done.stdout.splitlines()] == [
        "Icon.Created",
        "Icon.PriceChanged",
        "Icon.PriceChanged",
    ]


def test_tail_stops_after_the_idle_timeout_with_what_it_found(
    topic: str, published: list[str]
) -> None:
    done = _tail(topic, "--from-beginning", "--type", "Icon.Created", "--timeout", "2")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == published[:1]
