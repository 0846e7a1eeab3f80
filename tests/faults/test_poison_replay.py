"""Fault: a poison event parks its key, and an operator's replay after the fix leaves the view
equal to a replay of the log.

The carts projection (the real projector and Redis view, into a key prefix of its own) runs on
the consumer runner with the PostgreSQL parking lot, fed by the relay from an event store of this
test's own. The projection refuses carts in a currency it does not support yet: the first event
of one cart K is poison. All of K's events are parked (none applied) while every other cart is
applied; once the rule is lifted ("the fix", in this process), `iconmarket dlq replay --group G
--key K` (a real subprocess) has the group's runner apply them in order, and the view then equals
the whole log replayed into a shadow prefix. Without the per-key parking, K's later events are
applied past the missing one (the view holds a cart without meta, then differs from the replay).

`tests/integration/test_consumer_runner_kafka.py` covers the dead letters' headers and the CLI's
listing; this case checks the view against a replay."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from uuid import UUID

import pytest

from commands import messages as m
from infra.audit.diff import ProjectionDiff, compare, documents
from infra.bootstrap import Container
from infra.rebuild import head, replay
from infra.settings import Settings
from infra.targets import Target, target_for
from stream.consumer import Backoff, ConsumerRunner, Delivery
from stream.dlq import read_dead_letters
from stream.parking import PostgresParkingLot
from stream.relay import Relay
from tests.faults.harness import end_offsets, relaying, sample, scratch_container
from tests.support import (
    Running,
    ctx,
    dlq_cli,
    parked_rows,
    published_catalog,
    scratch_topic,
    wait_for_saved_position,
)

pytestmark = pytest.mark.integration

OTHER_CARTS = 4
UNSUPPORTED = "CHF"


class UnsupportedCurrency(ValueError):
    """The projection's rule until the fix: a deterministic refusal, hence poison."""


@dataclass
class Store:
    container: Container
    topic: str
    view: str
    """The key prefix the projection under test writes (a shadow of the carts view)."""


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with (
        scratch_container(settings, "iconmarket_faults") as container,
        scratch_topic(container, "test.faults.poison", 3) as topic,
    ):
        target = target_for("carts", container.redis, container.opensearch)
        view = target.shadow(f"faults-view-{uuid.uuid4().hex[:10]}")
        try:
            yield Store(container, topic, view)
        finally:
            target.drop(view)


def _cart(container: Container, icon_ids: Sequence[UUID], currency: str) -> tuple[str, int]:
    """A cart of a customer of its own: opened, every icon added, the first removed again.
    Returns its id and version."""
    who = ctx(f"faults-poison-cust-{uuid.uuid4().hex[:6]}", "customer")
    bus = container.bus
    cart_id = bus.execute(m.OpenCart(currency=currency), who).aggregate_id
    for icon_id in icon_ids:
        bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who)
    last = bus.execute(
        m.RemoveFromCart(cart_id=cart_id, product_kind="icon", product_id=icon_ids[0]), who
    )
    return str(cart_id), last.version


def test_a_poison_key_is_parked_whole_and_its_replay_leaves_the_view_equal_to_a_replay(
    store: Store,
) -> None:
    container, topic = store.container, store.topic
    prices = (100, 250, 40)
    usd = published_catalog(container.bus, "faults-poison-owner", prices=prices)
    chf = published_catalog(container.bus, "faults-poison-owner", prices, currency=UNSUPPORTED)
    poisoned, versions = _cart(container, chf.icon_ids, UNSUPPORTED)
    others = dict(_cart(container, usd.icon_ids, "USD") for _ in range(OTHER_CARTS))
    last = head(container, "commerce")

    target = target_for("carts", container.redis, container.opensearch)
    view = store.view
    refused = {UNSUPPORTED}

    def project(deliveries: Sequence[Delivery], /) -> None:
        events = [delivery.event for delivery in deliveries]
        for event in events:  # refused before anything is written, as a pure projector would
            if event.type == "Cart.Opened" and event.data["currency"] in refused:
                raise UnsupportedCurrency(f"currency {event.data['currency']} not supported")
        target.apply(view, events)

    group = f"test-faults-poison-{uuid.uuid4().hex[:10]}"
    runner = ConsumerRunner(
        container.settings,
        group_id=group,
        topics=[topic],
        handler=project,
        max_attempts=2,
        backoff=Backoff(initial_s=0.01, factor=2.0, max_s=0.04),
        poll_timeout_s=0.2,
        parking=PostgresParkingLot(container.settings),
    )
    relay = Relay(container.applications.commerce, container.settings, topic=topic, log_name=topic)
    running = Running(runner)
    try:
        with relaying(relay):
            assert wait_for_saved_position(container.settings, topic, last, 30) >= last
        ends = end_offsets(container.settings, topic)
        assert runner.wait_until_committed(ends, 60), (runner.committed(), ends)

        parked = parked_rows(container.settings, group)
        assert [key for key, _, _ in parked] == [poisoned] * versions  # every one of K's events
        poison = parked[0]
        assert poison[2] is None
        [behind] = {behind for _, _, behind in parked[1:]}  # all behind the poison event
        assert behind is not None
        assert (behind.split("/")[0], int(behind.split("/")[-1])) == (topic, poison[1])
        letters = read_dead_letters(container.settings, topic, timeout_s=15)
        assert [letter.key for letter in letters.letters] == [poisoned.encode()] * versions
        assert sample("iconmarket_consumer_dead_lettered_total", group=group, topic=topic) == 1
        before = documents(container, "carts", view)
        assert f"cart:{poisoned}" not in before  # none of K's events applied
        assert {key: int(before[f"cart:{key}"]["version"]) for key in others} == others

        refused.clear()  # the fix
        replayed = dlq_cli(
            "replay",
            "--group",
            group,
            "--key",
            poisoned,
            "--by",
            "ops:faults",
            "--reason",
            f"{UNSUPPORTED} is supported now",
            "--wait",
            "30",
            database=container.settings.postgres_db,
        )
    finally:
        running.finish()
    assert replayed.returncode == 0, replayed.stderr
    outcome = json.loads(replayed.stdout)
    assert {k: v for k, v in outcome.items() if k != "request"} == {
        "action": "replay",
        "requested_by": "ops:faults",
        "reason": f"{UNSUPPORTED} is supported now",
        "applied": versions,
        "skipped": 0,
        "still_parked": 0,
    }
    assert parked_rows(container.settings, group) == []

    diff, shadow_count = _against_a_replay(container, target, view, last)
    assert (diff.only_left, diff.only_right, diff.changed) == ([], [], {})
    carts = 1 + OTHER_CARTS
    assert (diff.left_count, shadow_count) == (2 * carts, 2 * carts)  # a hash and an index each
    after = documents(container, "carts", view)
    assert int(after[f"cart:{poisoned}"]["version"]) == versions
    print(
        f"parked={len(parked)} dead_letters={len(letters.letters)} applied_on_replay="
        f"{outcome['applied']} documents={diff.left_count} differences={diff.differences}"
    )


def _against_a_replay(
    container: Container, target: Target, view: str, until: int
) -> tuple[ProjectionDiff, int]:
    """The view against the log replayed into a new shadow prefix (dropped afterwards)."""
    name = f"faults-replay-{uuid.uuid4().hex[:10]}"
    result = replay(container, ["commerce"], target, name, {"commerce": until})
    try:
        shadow = documents(container, "carts", result.new_target)
        diff = compare(
            "carts", view, result.new_target, documents(container, "carts", view), shadow
        )
        return diff, len(shadow)
    finally:
        target.drop(result.new_target)
