"""The command layer on the in-memory store: results, positions, idempotency, policy, batching."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing import persistence
from eventsourcing.persistence import IntegrityError

from commands import bus as bus_module
from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.errors import (
    AccessDenied,
    AggregateNotFound,
    AlreadyExists,
    CommandDeadlineExceeded,
    IdempotencyKeyReused,
    ProductUnavailable,
    StoreUnavailable,
    VersionConflict,
)
from commands.routes import ROUTES
from domain.cart import Cart
from domain.errors import DomainError
from domain.order import Order, OrderStatus
from domain.publication import PublicationStatus
from tests.support import ctx, published_catalog


@pytest.fixture
def apps() -> Iterator[Applications]:
    built = build_applications(None)
    yield built
    built.close()


@pytest.fixture(params=[False, True], ids=["direct", "group-commit"])
def bus(apps: Applications, request: pytest.FixtureRequest) -> Iterator[CommandBus]:
    built = CommandBus(apps, ROUTES, group_commit=request.param)
    yield built
    built.close()


def _log_size(apps: Applications) -> int:
    return sum(
        len(app.recorder.select_notifications(start=None, limit=10**6)) for app in apps.all()
    )


def test_a_command_returns_id_version_and_position(bus: CommandBus, apps: Applications) -> None:
    first = bus.execute(m.CreateFamily(name="Arrows"), ctx("alice", "contributor"))
    second = bus.execute(
        m.UpdateFamily(family_id=first.aggregate_id, name="Arrows 2"), ctx("alice", "contributor")
    )
    assert (first.version, first.position) == (1, 1)
    assert (second.aggregate_id, second.version, second.position) == (first.aggregate_id, 2, 2)
    assert apps.catalog.repository.get(first.aggregate_id).name == "Arrows 2"


def test_checkout_freezes_prices_and_versions(bus: CommandBus, apps: Applications) -> None:
    catalog = published_catalog(bus, "carol")
    customer = ctx("dave", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    for icon_id in catalog.icon_ids:
        bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), customer)
    bus.execute(
        m.ChangeIconPrice(
            icon_id=catalog.icon_ids[0], price=m.Money(amount_minor=9999, currency="USD")
        ),
        ctx("carol", "contributor"),
    )
    result = bus.execute(m.CheckOut(cart_id=cart_id), customer)
    order = apps.commerce.repository.get(result.aggregate_id)
    cart = apps.commerce.repository.get(cart_id)
    assert isinstance(order, Order)
    assert isinstance(cart, Cart)
    assert result.version == 1
    assert order.status is OrderStatus.PENDING
    assert [line.unit_price.amount_minor for line in order.lines] == [500, 0]
    assert [line.icon_version for line in order.lines] == [1, 1]
    assert order.total.amount_minor == 500
    assert cart.is_closed
    assert cart.order_id == order.id


def test_idempotent_repeat_returns_the_first_result_and_appends_nothing(
    bus: CommandBus, apps: Applications
) -> None:
    alice = ctx("alice", "contributor", key="k-1")
    first = bus.execute(m.CreateFamily(name="Arrows"), alice)
    size = _log_size(apps)
    again = bus.execute(m.CreateFamily(name="Arrows"), alice)
    assert (again.aggregate_id, again.version, again.position) == (
        first.aggregate_id,
        first.version,
        first.position,
    )
    assert again.replayed is True
    assert _log_size(apps) == size
    with pytest.raises(IdempotencyKeyReused):
        bus.execute(m.CreateFamily(name="Other"), alice)
    assert _log_size(apps) == size


def test_the_same_key_from_two_actors_does_not_collide(bus: CommandBus) -> None:
    one = bus.execute(m.CreateFamily(name="A"), ctx("alice", "contributor", key="same"))
    two = bus.execute(m.CreateFamily(name="A"), ctx("bob", "contributor", key="same"))
    assert one.aggregate_id != two.aggregate_id


def test_stale_expected_version_is_a_conflict_and_appends_nothing(
    bus: CommandBus, apps: Applications
) -> None:
    family = bus.execute(m.CreateFamily(name="Arrows"), ctx("alice", "contributor"))
    size = _log_size(apps)
    with pytest.raises(VersionConflict):
        bus.execute(
            m.UpdateFamily(family_id=family.aggregate_id, name="X"),
            ctx("alice", "contributor", expected=7),
        )
    assert _log_size(apps) == size


@pytest.mark.parametrize(
    ("command", "roles", "error"),
    [
        (m.CreateFamily(name="A"), ("customer",), AccessDenied),
        (m.CreateFamily(name="A"), ("contributor", "denyall"), AccessDenied),
        (m.OpenCart(currency="USD"), ("auditor",), AccessDenied),
        (m.PublishFamily(family_id=UUID(int=1)), ("contributor",), AggregateNotFound),
    ],
)
def test_refusals_append_nothing(
    bus: CommandBus, apps: Applications, command: object, roles: tuple[str, ...], error: type
) -> None:
    with pytest.raises(error):
        bus.execute(command, ctx("eve", *roles))
    assert _log_size(apps) == 0


def test_only_the_owner_changes_a_family(bus: CommandBus) -> None:
    family = bus.execute(m.CreateFamily(name="Arrows"), ctx("alice", "contributor"))
    with pytest.raises(AccessDenied, match="only the owner"):
        bus.execute(m.PublishFamily(family_id=family.aggregate_id), ctx("bob", "contributor"))
    admin = bus.execute(m.PublishFamily(family_id=family.aggregate_id), ctx("root", "admin"))
    assert admin.version == 2


def test_unsellable_products_cannot_be_added(bus: CommandBus) -> None:
    catalog = published_catalog(bus, "carol", bundle=None)
    customer = ctx("dave", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    bus.execute(m.RetireIcon(icon_id=catalog.icon_ids[0]), ctx("carol", "contributor"))
    with pytest.raises(ProductUnavailable):
        bus.execute(
            m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=catalog.icon_ids[0]),
            customer,
        )
    with pytest.raises(ProductUnavailable):
        bus.execute(
            m.AddToCart(cart_id=cart_id, product_kind="set", product_id=catalog.set_id), customer
        )


def test_domain_errors_carry_their_code(bus: CommandBus) -> None:
    catalog = published_catalog(bus, "carol")
    customer = ctx("dave", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    add = m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=catalog.icon_ids[0])
    bus.execute(add, customer)
    with pytest.raises(DomainError) as error:
        bus.execute(add, customer)
    assert error.value.code == "already_in_cart"


def test_registration_hashes_the_password_and_refuses_duplicates(
    bus: CommandBus, apps: Applications
) -> None:
    result = bus.execute(
        m.RegisterAccount(email="Ann@Example.com", password="correct horse battery"),
        ctx("anonymous"),
    )
    account = apps.identity.repository.get(result.aggregate_id)
    assert account.email == "ann@example.com"
    assert account.password_hash.startswith("$argon2id$")
    assert "correct horse" not in repr(m.RegisterAccount(email="a@b.c", password="correct horse"))
    with pytest.raises(AlreadyExists):
        bus.execute(m.RegisterAccount(email="ann@example.com", password="x" * 12), ctx("anonymous"))
    with pytest.raises(AccessDenied):
        bus.execute(
            m.RegisterAccount(email="mallory@example.com", password="x" * 12, roles=("admin",)),
            ctx("anonymous"),
        )


def test_group_commit_batches_concurrent_commands_and_keeps_per_aggregate_order(
    apps: Applications,
) -> None:
    bus = CommandBus(apps, ROUTES, group_commit=True)
    try:
        family = bus.execute(m.CreateFamily(name="F0"), ctx("alice", "contributor"))
        renames = [
            m.UpdateFamily(family_id=family.aggregate_id, name=f"F{n}") for n in range(1, 41)
        ]
        futures = [bus.submit(c, ctx("alice", "contributor")) for c in renames]
        creates = [
            bus.submit(m.CreateFamily(name=f"G{n}"), ctx("bob", "contributor")) for n in range(40)
        ]
        results = [f.result() for f in futures]
        created = [f.result() for f in creates]
    finally:
        bus.close()
    assert [r.version for r in results] == list(range(2, 42))
    assert [r.position for r in results] == sorted(r.position for r in results)
    assert apps.catalog.repository.get(family.aggregate_id).name == "F40"
    assert len({r.aggregate_id for r in created}) == 40


def test_concurrent_commands_all_succeed_in_both_modes(bus: CommandBus, apps: Applications) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(
                lambda n: bus.execute(m.CreateFamily(name=f"F{n}"), ctx(f"u{n}", "contributor")),
                range(50),
            )
        )
    assert sorted(r.position for r in results) == list(range(1, 51))
    assert _log_size(apps) == 50


def test_a_short_password_is_refused_by_the_command_itself(
    bus: CommandBus, apps: Applications
) -> None:
    from commands.errors import WeakPassword

    with pytest.raises(WeakPassword, match="at least 10 characters"):
        bus.execute(m.RegisterAccount(email="short@example.com", password="123456789"), ctx("a"))
    assert _log_size(apps) == 0


class _Boom(RuntimeError):
    pass


def _raise_once(target: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``target.name`` raise ``_Boom`` on its first call, then behave as before."""
    original = getattr(target, name)
    calls = {"n": 0}

    def once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise _Boom(f"{name} failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, once)


@pytest.fixture
def grouped(apps: Applications) -> Iterator[CommandBus]:
    built = CommandBus(apps, ROUTES, group_commit=True, deadline_s=1.0)
    yield built
    built.close()


class _Gate:
    """Holds the catalog writer inside its first save (its transaction) until ``open()``."""

    def __init__(self, bus: CommandBus, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        original = bus_module._save

        def gated(app: Any, prepared: Any) -> Any:
            if app.context == "catalog" and not self.released.is_set():
                self.entered.set()
                assert self.released.wait(timeout=10)
            return original(app, prepared)

        monkeypatch.setattr(bus_module, "_save", gated)

    def open(self) -> None:
        self.released.set()


def _families(apps: Applications) -> list[str]:
    return [n.topic for n in apps.catalog.recorder.select_notifications(start=None, limit=10**6)]


def test_an_error_after_the_save_fails_only_that_command_and_the_writer_goes_on(
    grouped: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    _raise_once(bus_module, "_result", monkeypatch)
    with pytest.raises(_Boom):
        grouped.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    after = grouped.execute(m.CreateFamily(name="B"), ctx("alice", "contributor"))
    assert (after.version, after.position) == (1, 2)
    assert all(w.alive for w in grouped.health())


def test_an_error_outside_the_save_fails_its_batch_and_the_writer_goes_on(
    grouped: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    _raise_once(grouped, "_is_stale", monkeypatch)
    with pytest.raises(_Boom):
        grouped.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    assert _log_size(apps) == 0
    after = grouped.execute(m.CreateFamily(name="B"), ctx("alice", "contributor"))
    assert (after.version, after.position) == (1, 1)
    assert [w.healthy for w in grouped.health()] == [True, True, True]


def test_a_replay_failing_in_the_writer_fails_that_command_alone(
    grouped: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = grouped.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    gate = _Gate(grouped, monkeypatch)
    blocker = grouped.submit(m.CreateFamily(name="X"), ctx("bob", "contributor"))
    assert gate.entered.wait(timeout=5)
    keyed = ctx("alice", "contributor", key="k-stale")
    first = grouped.submit(m.UpdateFamily(family_id=family.aggregate_id, name="B"), keyed)
    second = grouped.submit(
        m.UpdateFamily(family_id=family.aggregate_id, name="C"), ctx("alice", "contributor")
    )
    _raise_once(grouped, "_replay", monkeypatch)  # the writer's replay of the deferred one
    gate.open()
    blocker.result(timeout=5)
    assert first.result(timeout=5).version == 2
    with pytest.raises(_Boom):
        second.result(timeout=5)
    assert grouped.execute(m.CreateFamily(name="D"), ctx("alice", "contributor")).version == 1


def test_a_cancelled_request_is_skipped_and_cannot_kill_the_writer(
    grouped: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(grouped, monkeypatch)
    blocker = grouped.submit(m.CreateFamily(name="X"), ctx("bob", "contributor"))
    assert gate.entered.wait(timeout=5)
    cancelled = grouped.submit(m.CreateFamily(name="Gone"), ctx("bob", "contributor"))
    assert cancelled.cancel()
    gate.open()
    assert blocker.result(timeout=5).position == 1
    after = grouped.execute(m.CreateFamily(name="Y"), ctx("bob", "contributor"))
    assert after.position == 2
    assert _log_size(apps) == 2
    assert all(w.alive for w in grouped.health())


def test_a_result_for_a_future_cancelled_meanwhile_is_dropped_quietly() -> None:
    from concurrent.futures import Future

    future: Future[Any] = Future()
    assert future.cancel()
    bus_module._resolve(future, bus_module.CommandResult(UUID(int=1), 1, 1))
    bus_module._fail(future, _Boom("late"))
    assert future.cancelled()


def test_a_command_still_waiting_at_its_deadline_is_never_saved(
    grouped: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(grouped, monkeypatch)
    blocker = grouped.submit(m.CreateFamily(name="X"), ctx("bob", "contributor"))
    assert gate.entered.wait(timeout=5)
    queued = grouped.submit(m.CreateFamily(name="Queued"), ctx("bob", "contributor"))
    with pytest.raises(CommandDeadlineExceeded, match="not applied") as error:
        grouped.execute(m.CreateFamily(name="Late"), ctx("bob", "contributor"))
    assert error.value.code == "command_timeout"
    assert error.value.retry_after_s == 1
    time.sleep(0.05)  # past ``queued``'s deadline too (submitted before ``Late``)
    gate.open()
    assert blocker.result(timeout=5).position == 1
    with pytest.raises(CommandDeadlineExceeded):
        queued.result(timeout=5)  # dropped by the writer, unsaved
    assert grouped.execute(m.CreateFamily(name="Y"), ctx("bob", "contributor")).position == 2
    assert _log_size(apps) == 2


def test_a_direct_command_past_its_deadline_before_its_save_is_not_saved(
    apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = CommandBus(apps, ROUTES, deadline_s=0.0)
    with pytest.raises(CommandDeadlineExceeded):
        direct.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    assert _log_size(apps) == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_reports_a_stuck_writer_then_a_dead_one_which_submit_restarts(
    grouped: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [(w.name, w.healthy) for w in grouped.health()] == [
        ("command_writer:catalog", True),
        ("command_writer:commerce", True),
        ("command_writer:identity", True),
    ]
    gate = _Gate(grouped, monkeypatch)
    blocker = grouped.submit(m.CreateFamily(name="X"), ctx("bob", "contributor"))
    assert gate.entered.wait(timeout=5)
    with pytest.raises(CommandDeadlineExceeded):
        grouped.execute(m.CreateFamily(name="Late"), ctx("bob", "contributor"))
    stuck = grouped.health()[0]
    assert (stuck.alive, stuck.healthy) == (True, False)
    assert stuck.problem is not None
    assert "beyond the 1s deadline" in stuck.problem
    gate.open()
    blocker.result(timeout=5)
    assert grouped.health()[0].healthy

    def die(app: Any, pending: Any) -> Any:
        raise SystemExit("writer killed")

    monkeypatch.setattr(grouped, "_write_one_batch", die)
    doomed = grouped.submit(m.CreateFamily(name="Doomed"), ctx("bob", "contributor"))
    with pytest.raises(SystemExit):
        doomed.result(timeout=5)
    writer_thread = grouped._writers["catalog"].thread
    assert writer_thread is not None
    writer_thread.join(timeout=5)
    dead = grouped.health()[0]
    assert (dead.alive, dead.healthy) == (False, False)
    assert dead.problem == "the group-commit writer thread is not running"
    monkeypatch.undo()
    assert grouped.execute(m.CreateFamily(name="Y"), ctx("bob", "contributor")).position == 2
    assert grouped.health()[0].healthy
    assert _log_size(apps) == 2


def test_a_keyed_repeat_answers_the_position_of_the_first_answer_over_every_aggregate(
    bus: CommandBus, apps: Applications
) -> None:
    catalog = published_catalog(bus, "carol")
    customer = ctx("dave", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    bus.execute(
        m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=catalog.icon_ids[0]),
        customer,
    )
    keyed = ctx("dave", "customer", key="checkout-1")
    first = bus.execute(m.CheckOut(cart_id=cart_id), keyed)
    head = apps.commerce.recorder.max_notification_id()
    again = bus.execute(m.CheckOut(cart_id=cart_id), keyed)
    assert first.position == head
    assert (again.aggregate_id, again.version, again.position, again.replayed) == (
        first.aggregate_id,
        first.version,
        first.position,
        True,
    )


def test_a_save_whose_acknowledgement_was_lost_is_answered_not_applied_again(
    bus: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library retries a commit whose ack was lost into an IntegrityError; without an
    Idempotency-Key the bus's internal key recognises the stored events."""
    family = bus.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    recorder = apps.catalog.recorder
    real_insert = recorder.insert_events

    def insert_then_lose_the_ack(stored_events: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(recorder, "insert_events", real_insert)
        real_insert(stored_events, **kwargs)
        raise IntegrityError("duplicate key value violates unique constraint (after a retry)")

    monkeypatch.setattr(recorder, "insert_events", insert_then_lose_the_ack)
    result = bus.execute(
        m.UpdateFamily(family_id=family.aggregate_id, name="B"), ctx("alice", "contributor")
    )
    stored = [
        (n.originator_version, n.id)
        for n in recorder.select_notifications(start=None, limit=100)
        if n.originator_id == family.aggregate_id
    ]
    assert stored == [(1, 1), (2, 2)]
    assert (result.version, result.position, result.replayed) == (2, 2, False)


def test_an_icon_published_after_its_cached_copy_is_sold_to_a_read_that_skips_the_refresh(
    bus: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saves do not refresh the aggregate cache, so it holds the icon as last read: a draft,
    before PublishIcon's save. A read that does not wait for another thread's fast-forward takes
    that copy (simulated here); the refusal is decided on a current read, so the sale goes on."""
    catalog = published_catalog(bus, "carol", prices=(100,))
    icon_id = catalog.icon_ids[0]
    repository = apps.catalog.repository
    assert repository.cache is not None
    assert repository.cache.get(icon_id).status is PublicationStatus.DRAFT
    real_get = repository.get

    def skipping_meets_a_fast_forward(aggregate_id: UUID, **kwargs: Any) -> Any:
        if kwargs.get("fastforward_skipping") and aggregate_id == icon_id:
            return copy.deepcopy(repository.cache.get(aggregate_id))
        return real_get(aggregate_id, **kwargs)

    monkeypatch.setattr(repository, "get", skipping_meets_a_fast_forward)
    customer = ctx("dave", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    added = bus.execute(
        m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), customer
    )
    assert (added.aggregate_id, added.version) == (cart_id, 2)


def _failing(calls: int, error: Exception, real: Any) -> Any:
    """``real``, raising ``error`` on each of its first ``calls`` calls (a store restarting)."""
    left = {"n": calls}

    def call(*args: Any, **kwargs: Any) -> Any:
        if left["n"] > 0:
            left["n"] -= 1
            raise error
        return real(*args, **kwargs)

    return call


def _stored_versions(apps: Applications, aggregate_id: UUID) -> list[tuple[int, int]]:
    return [
        (n.originator_version, n.id)
        for n in apps.catalog.recorder.select_notifications(start=None, limit=100)
        if n.originator_id == aggregate_id
    ]


def test_a_commit_whose_ack_was_lost_to_a_store_failure_is_answered_once_the_store_answers(
    bus: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library gave up retrying a commit that had happened (the server was restarting) and
    the first lookups of the command's internal key fail too: the bus waits for the store and
    answers the stored result, without applying the command again and without failing it."""
    family = bus.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    recorder = apps.catalog.recorder
    real_insert = recorder.insert_events
    restarting = persistence.OperationalError("server closed the connection unexpectedly")

    def commit_then_lose_the_ack(stored_events: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(recorder, "insert_events", real_insert)
        monkeypatch.setattr(
            recorder, "find_outcome", _failing(3, restarting, recorder.find_outcome)
        )
        real_insert(stored_events, **kwargs)
        raise restarting

    monkeypatch.setattr(recorder, "insert_events", commit_then_lose_the_ack)
    updated = bus.execute(
        m.UpdateFamily(family_id=family.aggregate_id, name="B"), ctx("alice", "contributor")
    )
    assert _stored_versions(apps, family.aggregate_id) == [(1, 1), (2, 2)]
    assert (updated.version, updated.position) == (2, 2)


def test_a_save_refused_while_the_store_restarts_is_saved_once_it_answers(
    bus: CommandBus, apps: Applications, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = apps.catalog.recorder
    down = persistence.OperationalError("the database system is starting up")
    monkeypatch.setattr(recorder, "insert_events", _failing(3, down, recorder.insert_events))
    created = bus.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    assert _stored_versions(apps, created.aggregate_id) == [(1, 1)]


@pytest.mark.parametrize("group_commit", [False, True], ids=["direct", "group-commit"])
def test_a_store_down_past_the_deadline_fails_unapplied_or_unknown_never_as_a_raw_error(
    apps: Applications, monkeypatch: pytest.MonkeyPatch, group_commit: bool
) -> None:
    """Down before anything was saved: 503 store_unavailable, not applied. Down after a save
    raised (it may have committed) and every lookup since failed: the unknown outcome,
    command_timeout. Both within two deadlines; the writer is fine afterwards."""
    bus = CommandBus(apps, ROUTES, group_commit=group_commit, deadline_s=0.4)
    recorder = apps.catalog.recorder
    down = psycopg.OperationalError("connection refused")
    real_get, real_find = apps.catalog.repository.get, recorder.find_outcome
    family = bus.execute(m.CreateFamily(name="A"), ctx("alice", "contributor"))
    try:
        monkeypatch.setattr(apps.catalog.repository, "get", _failing(10**6, down, real_get))
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="not applied") as unavailable:
            bus.execute(m.UpdateFamily(family_id=family.aggregate_id, name="B"), ctx("alice"))
        assert (unavailable.value.code, unavailable.value.retry_after_s) == (
            "store_unavailable",
            1,
        )
        assert unavailable.value.__cause__ is down
        monkeypatch.setattr(apps.catalog.repository, "get", real_get)

        def the_save_raises_and_the_store_stays_down(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(recorder, "find_outcome", _failing(10**6, down, real_find))
            raise down

        monkeypatch.setattr(recorder, "insert_events", the_save_raises_and_the_store_stays_down)
        with pytest.raises(CommandDeadlineExceeded, match="outcome is unknown"):
            bus.execute(m.CreateFamily(name="C"), ctx("alice", "contributor"))
        assert time.monotonic() - began < 2 * 0.4 + 0.4 + 0.5
    finally:
        monkeypatch.undo()
    assert _log_size(apps) == 1
    assert bus.execute(m.CreateFamily(name="D"), ctx("alice", "contributor")).position == 2
    assert all(w.healthy for w in bus.health())
    bus.close()
