"""Builders shared by the command, API and integration tests: a published catalog in a few calls."""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from commands import messages as m
from commands.applications import ContextApplication
from commands.bus import CommandBus
from commands.results import CommandContext

DEV_ENVIRON = {
    "ICONMARKET_ENV": "dev",
    "ICONMARKET_JWT_SECRET": "tests-dev-mode-signing-secret-0123456789",
}
"""What `make run` sets (dev mode), with a given signing secret so nothing is read or made: the
defaults as a local checkout runs them. Add overrides with ``{**DEV_ENVIRON, ...}``."""


def ctx(
    actor: str, *roles: str, key: str | None = None, expected: int | None = None
) -> CommandContext:
    return CommandContext(
        actor=actor,
        roles=frozenset(roles),
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
        idempotency_key=key,
        expected_version=expected,
    )


SERVICE = ctx("service:media", "service")


@dataclass(frozen=True)
class Catalog:
    owner: str
    family_id: UUID
    set_id: UUID
    icon_ids: tuple[UUID, ...]
    position: int = 0
    """The catalog log's position of the last command (the family published)."""


def record_media(bus: CommandBus, icon_id: UUID, owner: CommandContext) -> str:
    """Record an original (as ``owner``) and one PNG derivative (as the media service) for an
    icon, which makes it publishable; returns the original's content hash."""
    content_hash = f"sha256-{uuid.uuid4().hex}"
    original = m.SvgOriginal(
        key=f"originals/{content_hash}.svg",
        content_hash=content_hash,
        size_bytes=321,
        width=24,
        height=24,
    )
    bus.execute(m.RecordOriginal(icon_id=icon_id, original=original), owner)
    derivative = m.DerivativeItem(
        kind="png", size=64, key=f"d/{content_hash}/png-64.png", size_bytes=900
    )
    bus.execute(
        m.RecordDerivatives(
            icon_id=icon_id, source_hash=content_hash, renderer_version="r1", items=(derivative,)
        ),
        SERVICE,
    )
    return content_hash


def published_catalog(
    bus: CommandBus,
    owner: str,
    prices: tuple[int, ...] = (500, 0),
    bundle: int | None = 900,
    currency: str = "USD",
) -> Catalog:
    """A published family with one set and one published icon per price (minor units)."""
    contributor = ctx(owner, "contributor")
    family_id = bus.execute(m.CreateFamily(name="Arrows", tags=("ui",)), contributor).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(
            family_id=family_id,
            name="Arrows Line",
            style="line",
            bundle_price=m.Money(amount_minor=bundle, currency=currency) if bundle else None,
        ),
        contributor,
    ).aggregate_id
    icon_ids = []
    for n, price in enumerate(prices):
        icon_id = bus.execute(
            m.CreateIcon(
                set_id=set_id,
                name=f"arrow {n}",
                price=m.Money(amount_minor=price, currency=currency),
                tags=("arrow",),
            ),
            contributor,
        ).aggregate_id
        record_media(bus, icon_id, contributor)
        bus.execute(m.PublishIcon(icon_id=icon_id), contributor)
        icon_ids.append(icon_id)
    bus.execute(m.PublishIconSet(set_id=set_id), contributor)
    published = bus.execute(m.PublishFamily(family_id=family_id), contributor)
    return Catalog(owner, family_id, set_id, tuple(icon_ids), published.position)


@dataclass(frozen=True)
class Appended:
    """One stored event, as the notification log holds it."""

    context: str
    name: str
    originator_id: UUID
    version: int
    position: int


class EventLogs(Protocol):
    """The logs to look at: `Applications` (catalog, commerce, identity), or any set of
    applications (e.g. with the audit log too)."""

    def all(self) -> tuple[ContextApplication, ...]: ...


def log_heads(apps: EventLogs) -> dict[str, int]:
    """Each context's last notification id: take it before a call, then ask ``appended_since``."""
    return {app.context: app.recorder.max_notification_id() or 0 for app in apps.all()}


def appended_since(
    apps: EventLogs,
    heads: dict[str, int],
    correlation_id: str | None,
    watched: set[UUID] | frozenset[UUID] = frozenset(),
) -> list[Appended]:
    """Events after ``heads`` that carry ``correlation_id`` or belong to a ``watched`` aggregate;
    with ``correlation_id`` None, every event after ``heads``.

    Filtering by correlation id, not comparing heads, keeps "nothing appended" checks exact while
    other processes write to the same store; every event after ``heads`` is for a store of the
    test's own (`tests.faults.harness.scratch_container`), which nobody else writes to.
    """
    page = 500
    found = []
    for app in apps.all():
        start = heads[app.context] + 1
        while True:
            batch = app.recorder.select_notifications(start, limit=page)
            for notification in batch:
                event = app.mapper.to_domain_event(notification)
                correlation = getattr(event, "correlation_id", None)
                wanted = correlation_id is None or correlation == correlation_id
                if wanted or event.originator_id in watched:
                    found.append(
                        Appended(
                            app.context,
                            type(event).__qualname__,
                            event.originator_id,
                            event.originator_version,
                            notification.id,
                        )
                    )
            if len(batch) < page:
                break
            start = batch[-1].id + 1
    return found


SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "events" / "schemas"


@functools.cache
def _schema_validator(event_type: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_message(value: bytes) -> dict[str, Any]:
    """Check a Kafka message against the checked-in JSON Schema of its event type (raises)."""
    payload: dict[str, Any] = json.loads(value)
    _schema_validator(payload["type"]).validate(payload)
    return payload


def cart_envelopes(customer: str = "cust-1", prices: tuple[int, ...] = (250, 99)) -> list[Any]:
    """The envelopes of a real cart story (open, add each icon, remove the first, check out),
    produced by the command bus on the in-memory store."""
    from commands.applications import build_applications
    from commands.routes import ROUTES
    from stream.envelope import to_envelope

    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    catalog = published_catalog(bus, "owner-1", prices=prices)
    who = ctx(customer, "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    for icon_id in catalog.icon_ids:
        bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who)
    bus.execute(
        m.RemoveFromCart(cart_id=cart_id, product_kind="icon", product_id=catalog.icon_ids[0]),
        who,
    )
    bus.execute(m.CheckOut(cart_id=cart_id), who)
    envelopes = [
        to_envelope("commerce", n.id, apps.commerce.mapper.to_domain_event(n))
        for n in apps.commerce.recorder.select_notifications(start=None, limit=10_000)
    ]
    apps.close()
    return [e for e in envelopes if e.aggregate_id == str(cart_id)]


def wait_for_topic_leaders(
    bootstrap: str, topic: str, partitions: int, timeout_s: float = 30
) -> None:
    """Block until Kafka's metadata shows a leader for every partition of a just-created topic.

    A consumer that subscribes before that may be assigned partitions it then never fetches;
    each check here is a metadata round trip to the broker, not a sleep."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            probe.topics()  # forces a metadata request
            cluster = probe._client.cluster
            known = cluster.partitions_for_topic(topic) or set()
            leaders = [cluster.leader_for_partition(TopicPartition(topic, p)) for p in known]
            if len(known) == partitions and all(leader not in (None, -1) for leader in leaders):
                return
        raise AssertionError(f"topic {topic} has no leader for every partition after {timeout_s}s")
    finally:
        probe.close()


@contextlib.contextmanager
def scratch_topic(container: Any, prefix: str, partitions: int) -> Iterator[str]:
    """A new topic and its ``.dlq`` of this test's own, each with ``partitions`` led partitions;
    both deleted afterwards."""
    from kafka.admin import NewTopic

    from stream.topics import dead_letter_topic

    name = f"{prefix}.{uuid.uuid4().hex[:10]}"
    names = [name, dead_letter_topic(name)]
    admin = container.kafka_admin()
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names], timeout_ms=10_000)
        for created in names:
            wait_for_topic_leaders(container.settings.kafka_bootstrap, created, partitions)
        yield name
    finally:
        admin.delete_topics(names)
        admin.close()


def object_keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    """Every key in ``bucket`` under ``prefix`` (all pages)."""
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def create_scratch_bucket(s3: Any, prefix: str = "iconmarket-test") -> str:
    """A new, empty bucket of this test's own: "nothing stored" checks on it are exact."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return bucket


def drop_scratch_bucket(s3: Any, bucket: str) -> None:
    """Empty and delete a bucket made by `create_scratch_bucket`."""
    for key in object_keys(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


def eventually(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``check`` (a cheap read) until it holds or ``timeout_s`` passes; True if it held."""
    import threading
    import time

    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            return False
        pause.wait(interval_s)
    return True


def wait_for_saved_position(settings: Any, log_name: str, target: int, timeout_s: float) -> int:
    """Wait (on the relay's NOTIFY, never by sleeping) until the position the relay saved for
    ``log_name`` reaches ``target``; returns the position saved by then."""
    import time

    import psycopg

    from stream.relay import POSITIONS_CHANNEL, RelayPositions

    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(f"LISTEN {POSITIONS_CHANNEL}")
        positions = RelayPositions(conn)
        deadline = time.monotonic() + timeout_s
        while True:
            saved = positions.load(log_name) or 0
            if saved >= target or time.monotonic() > deadline:
                return saved
            for _ in conn.notifies(timeout=max(0.01, deadline - time.monotonic()), stop_after=1):
                pass


class Running:
    """A consumer runner in a background thread; `finish` stops it and re-raises what it raised."""

    def __init__(self, runner: Any) -> None:
        import threading

        self.runner = runner
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def dlq_cli(*args: str, database: str | None = None) -> subprocess.CompletedProcess[str]:
    """`iconmarket dlq …` as a real subprocess (on the event store ``database`` if given)."""
    import os
    import sys

    env = {**os.environ, "ICONMARKET_POSTGRES_DB": database} if database else None
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "dlq", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def parked_rows(settings: Any, group: str) -> list[tuple[str, int, str | None]]:
    """A consumer group's parked events, oldest first: (key, offset, parked behind)."""
    import psycopg

    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT convert_from(key, 'UTF8'), \"offset\", behind FROM consumer_parked "
            "WHERE group_id = %s ORDER BY seq",
            (group,),
        ).fetchall()
    return [(row[0], int(row[1]), row[2]) for row in rows]


def is_live(base: str, timeout_s: float = 2) -> bool:
    """Whether the API at ``base`` answers ``/health/live`` with 200 now."""
    import httpx

    try:
        return httpx.get(f"{base}/health/live", timeout=timeout_s).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_live(
    base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60, output: Path | None = None
) -> None:
    """Wait until the API process ``proc`` answers at ``base``; fail at once when it exits,
    with the end of its ``output`` file when there is one."""
    eventually(lambda: proc.poll() is not None or is_live(base), timeout_s, interval_s=0.1)
    if proc.poll() is None and is_live(base):
        return
    told = output.read_text(errors="replace")[-3000:] if output is not None else ""
    state = "did not start" if proc.poll() is None else f"exited {proc.returncode}"
    raise AssertionError(f"the API at {base} {state} within {timeout_s:.0f} s: {told}")


def free_port() -> int:
    """A loopback port free at this moment (the caller binds it right away)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
