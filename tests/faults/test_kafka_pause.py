"""Fault: the Kafka broker is frozen (SIGSTOP) for 20 s while cart commands are written.

Two relays tail the commerce log meanwhile: the one of `iconmarket run` (which the API's
read-your-writes waits on) and one of this test's own, publishing to a scratch topic under its own
log name, whose lag gauge and output are read exactly. While Kafka is frozen, a read with the
``min_position`` of a write made during the pause answers fresh or 503 ``stale``, never older
data; the test relay's lag rises. Afterwards the lag is back to 0, every event written reached
the topic exactly once per notification id, and nothing was parked by the relay."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from commands import messages as m
from commands.policy import Actor
from infra.bootstrap import Container
from infra.settings import Settings
from stream.envelope import decode
from stream.relay import Relay, RelayPositions
from tests.e2e.test_run import app_process
from tests.faults.harness import paused, read_topic, relaying, sample
from tests.support import ctx, eventually, published_catalog, scratch_topic, wait_for_saved_position

pytestmark = pytest.mark.integration

PAUSE_S = 20.0
ICONS = 8  # lines the HTTP customer adds during the pause, one read after each
CARTS = 12  # carts the in-process writer fills during the pause, ICONS lines each
READ_TIMEOUT_S = 1.0  # the API's read-your-writes wait


@pytest.fixture
def topic(container: Container) -> Iterator[str]:
    with scratch_topic(container, "test.faults.kafka", 3) as name:
        yield name


@dataclass(frozen=True)
class Read:
    """One read made during the pause: the position waited for and the product written there."""

    position: int
    product_id: str
    status: int
    body: dict[str, Any]
    content_type: str


def _lag(log_name: str) -> float:
    return sample("iconmarket_relay_lag_events", log=log_name)


def _fresh_or_stale(read: Read) -> bool:
    """The read-your-writes contract: the write visible, or 503 stale; never older data."""
    if read.status == 200:
        lines = {line["product_id"] for line in read.body["lines"]}
        return read.product_id in lines and int(read.body["position"]) >= read.position
    return (
        read.status == 503
        and read.content_type.startswith("application/problem+json")
        and read.body.get("code") == "stale"
        and read.body.get("min_position") == read.position
    )


def test_a_frozen_kafka_delays_the_relay_and_reads_answer_fresh_or_stale(
    container: Container, settings: Settings, topic: str
) -> None:
    bus = container.bus
    catalog = published_catalog(bus, f"faults-kafka-{uuid.uuid4().hex[:6]}", prices=(100,) * ICONS)
    customer = f"faults-kafka-cust-{uuid.uuid4().hex[:6]}"
    token = container.tokens.issue(Actor(customer, frozenset({"customer"}))).access_token
    auth = {"Authorization": f"Bearer {token}"}
    who = ctx(customer, "customer")
    commerce = container.applications.commerce
    head = commerce.recorder.max_notification_id() or 0
    relay = Relay(
        commerce,
        settings,
        topic=topic,
        log_name=topic,
        start_after=head,
        idle_wait_s=0.2,
        flush_timeout_s=2.0,  # shorter than the pause, so the outage is met as failed flushes
        retry_initial_s=0.2,
        retry_max_s=1.0,
    )
    written: list[int] = []  # positions of the in-process writer's commands during the pause
    reads: list[Read] = []

    def fill_carts() -> None:
        carts = [bus.execute(m.OpenCart(currency="USD"), who) for _ in range(CARTS)]
        written.extend(cart.position for cart in carts)
        futures = [
            bus.submit(
                m.AddToCart(cart_id=cart.aggregate_id, product_kind="icon", product_id=icon_id),
                who,
            )
            for icon_id in catalog.icon_ids
            for cart in carts
        ]
        written.extend(future.result().position for future in futures)

    with (
        app_process(READ_TIMEOUT_S) as app,
        httpx.Client(base_url=app.base, headers=auth, timeout=30) as client,
        relaying(relay),
    ):
        opened = client.post("/v1/carts", json={"currency": "USD"}).json()
        cart_id = opened["id"]
        assert eventually(
            lambda: (
                client.get(
                    f"/v1/carts/{cart_id}", params={"min_position": opened["position"]}
                ).status_code
                == 200
            ),
            60,
        ), "the cart was never readable before the fault"
        assert (
            wait_for_saved_position(settings, topic, opened["position"], 30) >= opened["position"]
        )
        assert eventually(lambda: _lag(topic) == 0, 10)
        before = relay.stats.position
        published_before = relay.stats.published
        writer = threading.Thread(target=fill_carts)

        with paused(settings, "kafka") as pause:
            writer.start()
            for icon_id in catalog.icon_ids:
                added = client.post(
                    f"/v1/carts/{cart_id}/lines",
                    json={"product_kind": "icon", "product_id": str(icon_id)},
                )
                assert added.status_code == 202, added.text
                position = added.json()["position"]
                got = client.get(f"/v1/carts/{cart_id}", params={"min_position": position})
                reads.append(
                    Read(
                        position,
                        str(icon_id),
                        got.status_code,
                        got.json(),
                        got.headers.get("content-type", ""),
                    )
                )
            writer.join(timeout=pause.left(PAUSE_S))
            assert not writer.is_alive(), "the commands were not written during the pause"
            last = max([*written, *(read.position for read in reads)])
            # The relay cannot publish, and its lag follows the log while it retries.
            rose = eventually(lambda: _lag(topic) >= last - before, pause.left(PAUSE_S))
            lag_in_pause = _lag(topic)
            assert (relay.stats.position, relay.stats.published) == (before, published_before)
            pause.hold(PAUSE_S)
        assert rose, f"the relay's lag was {lag_in_pause} during the pause, {last - before} due"

        assert wait_for_saved_position(settings, topic, last, 60) >= last
        assert eventually(lambda: _lag(topic) == 0, 30), f"lag {_lag(topic)} after the pause"
        final = _read_until_fresh(client, cart_id, reads[-1].position)
        behind = _consumer_lines(app.log) if final.status_code == 503 else []
        if not behind:
            assert final.status_code == 200, final.text
            assert sorted(line["product_id"] for line in final.json()["lines"]) == sorted(
                str(icon_id) for icon_id in catalog.icon_ids
            )
            assert final.json()["version"] == 1 + ICONS

    assert [read for read in reads if not _fresh_or_stale(read)] == []
    assert relay.stats.retries >= 1  # the outage was really met
    committed = _positions(settings, head, last)
    assert set(written) | {read.position for read in reads} <= set(committed)
    counts = Counter(decode(message.value).position for message in read_topic(settings, topic))
    assert {p: counts[p] for p in committed if counts[p] != 1} == {}  # each exactly once
    assert {p: n for p, n in counts.items() if n != 1} == {}  # and nothing else twice
    assert min(counts) > head
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        assert RelayPositions(conn).parked(topic) == []
    stale = sum(1 for read in reads if read.status == 503)
    print(
        f"pause={PAUSE_S}s events={len(committed)} written_in_pause={len(written) + len(reads)} "
        f"lag_in_pause={lag_in_pause} retries={relay.stats.retries} reads={len(reads)} "
        f"stale={stale} fresh={len(reads) - stale}"
    )
    if behind:  # every guarantee above held; the known, not yet diagnosed liveness problem
        pytest.xfail(
            "KNOWN (docs/reliability.md, Kafka case): the app's carts read model did not catch "
            f"up within 60 s after the freeze ({final.text}); its consumers said: {behind}"
        )


def _consumer_lines(log: list[str]) -> list[str]:
    """What the app's consumers said (for a read model that did not catch up)."""
    return [line for line in log if '"iconmarket.consumer' in line][-40:]


def _read_until_fresh(client: httpx.Client, cart_id: str, position: int) -> httpx.Response:
    """GET the cart at ``position`` again while it answers stale (each GET waits itself)."""
    answers: list[httpx.Response] = []

    def fresh() -> bool:
        answers.append(client.get(f"/v1/carts/{cart_id}", params={"min_position": position}))
        return answers[-1].status_code != 503

    eventually(fresh, 60, interval_s=0.0)
    return answers[-1]


def _positions(settings: Settings, after: int, upto: int) -> list[int]:
    """The notification ids committed in the commerce log in (after, upto]."""
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT notification_id FROM commerce_events "
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id",
            (after, upto),
        ).fetchall()
    return [int(row[0]) for row in rows]
