"""Fault: PostgreSQL restarted (``pg_ctl restart -m immediate``) under group-commit load.

The restart is of a private cluster (the stack's binaries, user and server options, a free
port), so nobody else's tests lose their server. Eight clients run cart commands through the real
CommandBus with group commit on: each opens carts and adds icons to them one by one, every other
cart with an Idempotency-Key on each of its commands and the others without; a client retries a
command that fails with a 503 (with the same key when it had one; without a key a retry is a
new command, so the client's belief is what is checked: acknowledged means stored once, failed
means not stored).

The kill lands on a commit whose acknowledgement is lost, for certain: the cluster withholds the
answer to a transaction that opts in (`PrivateCluster.withhold_opted_in_acknowledgements`), and
a trigger opts in the first group-commit batch holding both a keyed and an unkeyed command. Once
that batch is on disk and waiting, every backend is killed; the library retries the batch into
an IntegrityError.

Afterwards, read from the store: every acknowledged command's event exists exactly once and
nothing else does (per aggregate versions 1..n), every answer's position is its event's, each
command of the withheld batch was answered on its first call (the keyed ones as a replay of the
first result), every call returned within the command deadline with a 503 problem at worst,
commands succeed again within seconds, and every group-commit writer is ready."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.sql import SQL, Literal

from api.errors import EXCEPTION_HANDLERS
from commands import messages as m
from commands.bus import INTERNAL_KEY_PREFIX, CommandBus
from commands.results import CommandContext, CommandResult
from domain.cart import Cart
from infra.bootstrap import Container, bootstrap
from infra.health import command_writers
from infra.provision import ensure_audit_chain, ensure_event_store
from infra.settings import Settings
from tests.faults.harness import PrivateCluster, private_postgres
from tests.support import ctx, eventually, published_catalog

pytestmark = pytest.mark.integration

CLIENTS = 8
ICONS = 6  # a cart is OpenCart, then one AddToCart per icon
BEFORE = 300  # commands acknowledged before the kill
AFTER = 300  # commands acknowledged after the restart
CALL_MARGIN_S = 1.0  # beyond the command deadline, for a call to return
RECOVERY_BOUND_S = 10.0
CLIENT_GIVES_UP_S = 20.0
# Opts in (see the module docstring) the first transaction, once armed, that holds a command
# with a client's key and one without (more events than client keys: each of these commands
# records one event), and disarms itself in that very transaction. It counts client keys only,
# so it does not rely on the internal keys whose absence the red check tests.
WITHHOLD_TRIGGER = SQL("""
CREATE TABLE fault_withhold (armed boolean NOT NULL);
INSERT INTO fault_withhold VALUES (false);
CREATE FUNCTION fault_withhold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE client_keys bigint; events bigint;
BEGIN
  IF (SELECT armed FROM fault_withhold) THEN
    SELECT count(*) INTO client_keys FROM commerce_idempotency
      WHERE xmin = pg_current_xact_id()::xid AND idempotency_key NOT LIKE {internal};
    SELECT count(*) INTO events FROM commerce_events WHERE xmin = pg_current_xact_id()::xid;
    IF client_keys > 0 AND events > client_keys THEN
      UPDATE fault_withhold SET armed = false;
      PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER fault_withhold AFTER INSERT ON commerce_events
  FOR EACH ROW EXECUTE FUNCTION fault_withhold();
""").format(internal=Literal(INTERNAL_KEY_PREFIX + "%"))


@dataclass
class Attempt:
    """One call of ``bus.execute``: when it ran and what it answered."""

    started: float
    ended: float = 0.0
    result: CommandResult | None = None
    error: Exception | None = None


@dataclass
class Logical:
    """One command as the client means it, retried until acknowledged."""

    name: str
    command: m.OpenCart | m.AddToCart
    context: CommandContext
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def keyed(self) -> bool:
        return self.context.idempotency_key is not None

    @property
    def answer(self) -> CommandResult | None:
        return self.attempts[-1].result if self.attempts else None


@dataclass
class Load:
    """What the clients did, shared with the test's thread."""

    logicals: list[Logical] = field(default_factory=list)
    acknowledged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    crashed: list[BaseException] = field(default_factory=list)

    def acknowledged_count(self) -> int:
        with self.lock:
            return self.acknowledged


def _problem(error: Exception) -> tuple[int, str, str | None]:
    """The status, problem code and Retry-After the API answers for ``error``."""
    handler = next(
        EXCEPTION_HANDLERS[kind] for kind in type(error).__mro__ if kind in EXCEPTION_HANDLERS
    )
    response = handler(None, error)  # type: ignore[arg-type]
    return response.status_code, response.content["code"], response.headers.get("Retry-After")


def _call(bus: CommandBus, load: Load, logical: Logical) -> CommandResult | None:
    """Execute until acknowledged, retrying every 503 (with the same key, if any)."""
    with load.lock:
        load.logicals.append(logical)
    gives_up = time.monotonic() + CLIENT_GIVES_UP_S
    while time.monotonic() < gives_up:
        attempt = Attempt(time.monotonic())
        logical.attempts.append(attempt)
        try:
            attempt.result = bus.execute(logical.command, logical.context)
        except Exception as exc:  # the client sees every failure
            attempt.error = exc
        attempt.ended = time.monotonic()
        if attempt.result is not None:
            with load.lock:
                load.acknowledged += 1
            return attempt.result
        assert attempt.error is not None
        if _problem(attempt.error)[0] != 503:
            return None  # a refusal: retrying cannot help
        load.stop.wait(0.05)  # the client's back-off before its retry
    return None


def _client(bus: CommandBus, load: Load, number: int, icons: tuple[UUID, ...]) -> None:
    carts = 0
    try:
        while not load.stop.is_set():
            name = f"pgr-{number}-{carts}-{uuid.uuid4().hex[:6]}"
            keyed = carts % 2 == 0
            carts += 1

            def who(step: str, name: str = name, keyed: bool = keyed) -> CommandContext:
                return ctx(name, "customer", key=f"{name}-{step}" if keyed else None)

            opened = _call(bus, load, Logical(f"{name}/open", m.OpenCart(currency="USD"), who("o")))
            if opened is None:
                return
            for n, icon_id in enumerate(icons):
                add = m.AddToCart(
                    cart_id=opened.aggregate_id, product_kind="icon", product_id=icon_id
                )
                if _call(bus, load, Logical(f"{name}/add-{n}", add, who(f"a{n}"))) is None:
                    return
    except BaseException as exc:
        load.crashed.append(exc)
        raise


Effect = tuple[str, str]


@dataclass(frozen=True)
class Stored:
    position: int
    originator_id: UUID
    version: int
    effect: Effect


def _effect_of(event: Any, originator_id: UUID) -> Effect:
    """What an event did: a cart opened for its owner, or a product added to a cart."""
    if isinstance(event, Cart.Opened):
        return ("opened", event.owner_id)
    assert isinstance(event, Cart.LineAdded), type(event)
    return (f"added to {originator_id}", str(event.product_id))


def _intended(logical: Logical) -> Effect:
    command = logical.command
    if isinstance(command, m.OpenCart):
        return ("opened", logical.context.actor)
    return (f"added to {command.cart_id}", str(command.product_id))


def _stored(container: Container) -> list[Stored]:
    app = container.applications.commerce
    return [
        Stored(
            n.id,
            n.originator_id,
            n.originator_version,
            _effect_of(app.mapper.to_domain_event(n), n.originator_id),
        )
        for n in app.recorder.select_notifications(start=None, limit=10**6)
    ]


def _select(settings: Settings, query: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        return conn.execute(query, args).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def cluster(settings: Settings) -> Iterator[PrivateCluster]:
    with private_postgres(settings) as private:
        yield private


@pytest.fixture
def private(cluster: PrivateCluster) -> Iterator[Container]:
    """The app on the private cluster (group commit on), provisioned as `iconmarket init` does,
    with the withholding trigger."""
    built = bootstrap(dataclasses.replace(cluster.settings, group_commit=True))
    try:
        ensure_event_store(built, lambda _: None)
        ensure_audit_chain(built, lambda _: None)
        cluster.execute(WITHHOLD_TRIGGER.as_string(None))
        cluster.withhold_opted_in_acknowledgements()
        yield built
    finally:
        built.close()


def test_a_postgres_restart_under_group_commit_load_loses_and_duplicates_nothing(
    cluster: PrivateCluster, private: Container
) -> None:
    began = time.monotonic()
    bus = private.bus
    deadline_s = bus.deadline_s
    catalog = published_catalog(bus, f"pgr-owner-{uuid.uuid4().hex[:6]}", prices=(100,) * ICONS)
    load = Load()
    clients = [
        threading.Thread(target=_client, args=(bus, load, n, catalog.icon_ids), daemon=True)
        for n in range(CLIENTS)
    ]
    old_pid = cluster.postmaster_pid()
    for client in clients:
        client.start()
    try:
        assert eventually(lambda: load.acknowledged_count() >= BEFORE, 30), "no load"
        cluster.execute("UPDATE fault_withhold SET armed = true")
        withheld: list[str] = []

        def a_commit_is_withheld() -> bool:
            withheld[:] = cluster.withheld()
            return bool(withheld)

        assert eventually(a_commit_is_withheld, 10), "no batch with both kinds of command"
        killed_at = time.monotonic()
        cluster.restart_immediate()
        restarted_at = time.monotonic()
        assert cluster.postmaster_pid() != old_pid
        at_restart = load.acknowledged_count()
        assert eventually(lambda: load.acknowledged_count() >= at_restart + AFTER, 30), (
            f"{load.acknowledged_count() - at_restart} commands acknowledged after the restart"
        )
    finally:
        load.stop.set()
        for client in clients:
            client.join(timeout=2 * deadline_s + CLIENT_GIVES_UP_S)
    assert [c.is_alive() for c in clients] == [False] * CLIENTS, "a client hangs"
    assert load.crashed == []
    logicals = list(load.logicals)
    attempts = [a for logical in logicals for a in logical.attempts]
    failed = [a for a in attempts if a.error is not None]
    acknowledged = [lg for lg in logicals if lg.answer is not None]
    [xid] = withheld
    held_positions = {
        int(row[0])
        for row in _select(
            cluster.settings,
            "SELECT notification_id FROM commerce_events WHERE xmin::text = %s",
            xid,
        )
    }
    held = [lg for lg in acknowledged if lg.answer and lg.answer.position in held_positions]
    # Their clients retry as if those answers had been lost on the way (same key, same request):
    # the first answer again, appending nothing (the store checks below count every event).
    resent = [(lg.answer, bus.execute(lg.command, lg.context)) for lg in held if lg.keyed]

    # The store (this test's own): each acknowledged command's event once, and nothing else
    # (nothing applied whose caller was told it failed).
    stored = _stored(private)
    assert Counter(s.effect for s in stored) == Counter(_intended(lg) for lg in acknowledged)
    refused = [
        (lg.name, [f"{type(a.error).__name__}: {a.error}" for a in lg.attempts if a.error])
        for lg in logicals
        if lg.answer is None
    ]
    assert refused == []
    assert len(stored) == len(logicals)
    versions: dict[UUID, list[int]] = {}
    for s in stored:
        versions.setdefault(s.originator_id, []).append(s.version)
    gaps = {k: v for k, v in versions.items() if sorted(v) != list(range(1, len(v) + 1))}
    assert gaps == {}
    keys = Counter(
        "internal" if key.startswith(INTERNAL_KEY_PREFIX) else "client"
        for (key,) in _select(cluster.settings, "SELECT idempotency_key FROM commerce_idempotency")
    )
    keyed = sum(lg.keyed for lg in logicals)
    assert keys == Counter({"client": keyed, "internal": len(logicals) - keyed})

    # Every answer's position is its event's.
    position_of = {s.effect: s.position for s in stored}
    wrong = [
        (lg.name, lg.answer, position_of.get(_intended(lg)))
        for lg in logicals
        if lg.answer is None or lg.answer.position != position_of.get(_intended(lg))
    ]
    assert wrong == []

    # The withheld batch: on disk although unacknowledged; each of its commands was answered on
    # its first call, the keyed ones as a replay of that first result, and so were the resends.
    assert len(held) == len(held_positions)
    assert {lg.keyed for lg in held} == {True, False}
    assert [(lg.name, len(lg.attempts)) for lg in held] == [(lg.name, 1) for lg in held]
    assert [lg.answer.replayed for lg in held if lg.answer] == [lg.keyed for lg in held]
    assert [(a.aggregate_id, a.version, a.position, True) for a, _ in resent if a] == [
        (r.aggregate_id, r.version, r.position, r.replayed) for _, r in resent
    ]

    # No call hangs: each returns within the deadline, a failure is a 503 to retry.
    slowest = max(a.ended - a.started for a in attempts)
    assert slowest <= deadline_s + CALL_MARGIN_S
    problems = Counter(_problem(a.error)[:2] for a in failed if a.error is not None)
    assert {status for status, _ in problems} <= {503}
    assert all(_problem(a.error)[2] for a in failed if a.error is not None)

    # Commands succeed again within seconds of the kill; the writers are ready.
    first_after = min(
        a.ended for a in attempts if a.result is not None and a.started >= restarted_at
    )
    last_failure = max((a.ended for a in failed), default=killed_at)
    recovery_s = max(first_after, last_failure) - killed_at
    assert recovery_s < RECOVERY_BOUND_S
    assert [(r.name, r.up) for r in command_writers(private)] == [
        ("command_writer:catalog", True),
        ("command_writer:commerce", True),
        ("command_writer:identity", True),
    ]
    print(
        f"\n{len(logicals)} commands ({keyed} keyed), {len(attempts)} calls, "
        f"{len(failed)} failed {dict(problems)}, withheld batch of {len(held)} "
        f"({len(resent)} keyed, resent), {len(stored)} events checked, lost 0, "
        f"duplicated 0, slowest call {slowest:.2f}s, restart {restarted_at - killed_at:.2f}s, "
        f"recovery {recovery_s:.2f}s, {bus.stats.transactions} transactions "
        f"({bus.stats.fallbacks} batches retried alone), test {time.monotonic() - began:.1f}s"
    )
