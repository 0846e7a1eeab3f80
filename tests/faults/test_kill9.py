"""Fault: kill -9 of each process kind of `iconmarket run` in the middle of a mixed load.

The real `iconmarket run --no-stack --no-demo` serves a load over HTTP from two client threads:
shoppers (open a cart, add two icons, remove one, check out, pay, and Stripe's signed
``payment_intent.succeeded`` webhook for the payment) and a contributor uploading SVGs that the
media worker renders. Every command carries an Idempotency-Key and a correlation id of its own
and is retried with both on a connection error or a 5xx, as a real client (and Stripe) does.
Meanwhile the test SIGKILLs each child of the supervisor in turn — relay, projections (all four
projection workers' process), media workers, API, payments reconciler, cart sweeper — and waits
for the supervisor to restart it and for the new process to work (new pid, then its effect: the
relay publishes, the consumers commit new offsets, the API answers) before the next kill. The
media workers are killed while they render an upload, so their batch is always cut short.

After the load, once the relay and every consumer group have caught up with the logs' heads:
each acknowledged command's events are in the event store exactly once (counted per command by
its correlation id, against the events that command appends), every event reached its topic,
the test's documents in every read model equal a replay of their whole history into shadow
targets (the projectors and comparison of `iconmarket audit replay` / `audit diff`: 0
differences), every upload's derivatives are in the buckets, and nothing was dead-lettered or
parked.

Red checks (docs/reliability.md): with the supervisor giving up at the first crash, the relay's
kill stops everything; without the dead child's metrics dropped, two relays count as active;
with a relay that resumes from the log's head instead of its saved position, the uploads written
while it was down are never rendered; with a consumer that commits what it polled before it
applies it, the upload being rendered when the media workers are killed is never recorded;
with a carts projection that leaves out an event per batch, carts differ from the replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from commands import messages as m
from commands.policy import Actor
from domain.family import Family
from domain.icon import Icon
from domain.icon_set import IconSet
from domain.transaction import Transaction
from infra.audit.diff import LIVE, ProjectionDiff, compare, documents, where
from infra.audit.replay import Projection, drop_all, shadow_target
from infra.bootstrap import Container
from infra.cli.project_cmd import SPECS
from infra.cli.run_cmd import processes
from infra.rebuild import head, history
from infra.settings import Settings
from pipelines.media_worker import GROUP_ID as MEDIA_GROUP
from pipelines.previews import GROUP_ID as PREVIEWS_GROUP
from pipelines.previews import choose, member_hash, preview_key
from pipelines.render import RENDERER_VERSION, outputs
from stream.topics import CONTEXTS, dead_letter_topic, topic_for
from tests.e2e.test_run import RunningApp, app_process
from tests.faults.harness import end_offsets
from tests.support import (
    Catalog,
    ctx,
    eventually,
    is_live,
    object_keys,
    parked_rows,
    published_catalog,
    wait_for_saved_position,
)

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 6  # the broker's smallest: a killed consumer's partitions move on after it
WAIT_S = 60.0  # the longest any one wait (restart, catch-up) may take
COMMAND_DEADLINE_S = 60.0  # a client gives up on a command after retrying it this long
SHOP_PACE_S, UPLOAD_PACE_S = 0.2, 1.0  # the load's rate: a pause after each session / upload
APP_ENV = {
    "ICONMARKET_KAFKA_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
    # Six processes open a pool per bounded context at start; small pools keep the run well
    # inside the test stack's connection limit, which other tests share.
    "ICONMARKET_POSTGRES_POOL_SIZE": "4",
}
ID_FIELDS = ("id", "order_id", "transaction_id")  # ids in the answers to the load's commands
GROUPS = {
    **{spec.group_id: tuple(topic_for(c) for c in spec.contexts) for spec in SPECS.values()},
    MEDIA_GROUP: (topic_for("catalog"),),
    PREVIEWS_GROUP: (topic_for("catalog"),),
}
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
    '<path d="M4 12h16M14 6l6 6-6 6" stroke="#0f766e" stroke-width="2" fill="none"/>'
    "<title>{nonce}</title></svg>"
)
# What each acknowledged command appends, counted by its correlation id (the webhook's is
# ``stripe:<event id>``; an upload's includes the media worker's recording of its derivatives).
EXPECTED = {
    "open_cart": ["Cart.Opened"],
    "add_line": ["Cart.LineAdded"],
    "remove_line": ["Cart.LineRemoved"],
    "checkout": ["Cart.CheckedOut", "Order.Placed"],
    "pay": [
        "Order.PaymentStarted",
        "PaymentIntentLink.Linked",
        "Transaction.IntentCreated",
        "Transaction.Started",
    ],
    "webhook": [  # each shopper is a new customer, whose library is opened by the grant
        "Library.EntitlementsGranted",
        "Library.Opened",
        "Order.Fulfilled",
        "Order.Paid",
        "Transaction.Succeeded",
    ],
    "create_icon": ["Icon.Created", "IconSet.IconAdded"],
    "upload_svg": ["Icon.DerivativesRecorded", "Icon.OriginalRecorded"],
}


# --- the supervisor's children -------------------------------------------------------------


def children(supervisor: int, settings: Settings) -> dict[str, int]:
    """The supervisor's live children by process kind (a killed one not yet reaped is a zombie
    without a command line, so it is not listed)."""
    kinds = {tuple(argv[1:]): name for name, argv in processes(settings).items()}
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        kind = kinds.get(tuple(arg.decode() for arg in argv[1:]))
        if ppid == supervisor and kind is not None:
            found[kind] = int(entry.name)
    return found


# --- offsets and positions -----------------------------------------------------------------


Partition = tuple[str, int]


def committed(container: Container, groups: Sequence[str]) -> dict[str, dict[Partition, int]]:
    """Each consumer group's committed next offsets."""
    admin = container.kafka_admin()
    try:
        offsets = admin.list_group_offsets(list(groups))
    finally:
        admin.close()
    return {
        group: {(tp.topic, tp.partition): meta.offset for tp, meta in offsets[group].items()}
        for group in groups
    }


def ends_of(settings: Settings, topics: Sequence[str]) -> dict[Partition, int]:
    return {tp: end for topic in topics for tp, end in end_offsets(settings, topic).items()}


def reached(got: Mapping[Partition, int], wanted: Mapping[Partition, int]) -> bool:
    return all(got.get(tp, 0) >= offset for tp, offset in wanted.items())


def wait_for_group(container: Container, group: str, wanted: Mapping[Partition, int]) -> None:
    """Block until ``group`` committed at least ``wanted`` (polling the broker's offsets)."""
    assert eventually(lambda: reached(committed(container, [group])[group], wanted), WAIT_S, 0.2), (
        group,
        committed(container, [group]),
        wanted,
    )


def heads(container: Container) -> dict[str, int]:
    return {context: head(container, context) for context in CONTEXTS}


def caught_up(container: Container, mine: Callable[[str], bool]) -> dict[str, int]:
    """Wait until the relay published every log up to its head and every consumer group
    committed every message; again while that made the workers append more of this test's
    events (derivatives, previews; ``mine`` tells them by correlation id). Returns the heads it
    settled at: every event of this test is at or before them, and applied by every view.

    Other processes may write meanwhile (other tests on a shared stack); their later events are
    left out of the bound, which is why it is not simply "until the heads stop moving"."""
    settings = container.settings
    wanted = heads(container)
    while True:
        for context, position in wanted.items():
            saved = wait_for_saved_position(settings, context, position, WAIT_S)
            assert saved >= position, f"the relay reached {saved} of {context}'s {position}"
        for group, topics in GROUPS.items():
            wait_for_group(container, group, ends_of(settings, topics))
        now = heads(container)
        later = events_by_correlation(container, wanted)
        if now == wanted or not any(mine(correlation) for correlation in later):
            return wanted
        wanted = now


# --- the load ------------------------------------------------------------------------------


@dataclass
class Sent:
    """One command as the client saw it: acknowledged once it got its success status."""

    kind: str
    correlation: str
    attempts: int = 0
    status: int | None = None
    body: Any = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and self.status < 300


@dataclass
class Client:
    """An HTTP client that retries a command with the same Idempotency-Key (and body) on a
    connection error or a 5xx, with a capped backoff, for up to ``COMMAND_DEADLINE_S``."""

    base: str
    run: str
    sent: list[Sent] = field(default_factory=list)
    retried: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    abort: threading.Event = field(default_factory=threading.Event)
    """Set when the test failed: stop retrying at once."""

    def send(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        correlation: str | None = None,
        **request: Any,
    ) -> Sent:
        sent = Sent(kind, correlation or f"{self.run}-{uuid.uuid4().hex}")
        with self.lock:
            self.sent.append(sent)
        sending = {
            **headers,
            "Idempotency-Key": f"k-{uuid.uuid4().hex}",
            "X-Correlation-ID": sent.correlation,
        }
        deadline = time.monotonic() + COMMAND_DEADLINE_S
        delay = 0.05
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while True:
                sent.attempts += 1
                try:
                    response = http.request(method, path, headers=sending, **request)
                except httpx.TransportError as exc:
                    self._retrying(type(exc).__name__)
                else:
                    if response.status_code < 500:
                        sent.status, sent.body = response.status_code, response.json()
                        return sent
                    self._retrying(str(response.status_code))
                if time.monotonic() > deadline or self.abort.is_set():
                    return sent
                threading.Event().wait(delay)  # a client's backoff between retries
                delay = min(1.0, delay * 2)

    def _retrying(self, why: str) -> None:
        with self.lock:
            self.retried[why] += 1


@dataclass(frozen=True)
class Upload:
    icon_id: UUID
    content_hash: str
    position: int

    def keys(self) -> dict[str, bool]:
        """Every derivative key the media worker must store, and whether it is public."""
        return {o.key(self.content_hash, RENDERER_VERSION): o.public for o in outputs()}

    def preview(self) -> str:
        [key] = [key for key, public in self.keys().items() if public]
        return key


@dataclass(frozen=True)
class Mine:
    """What the test wrote: its commands' correlation ids, and the ids (customers, aggregates)
    its read-model documents are keyed by."""

    correlations: frozenset[str]
    ids: frozenset[str]

    def event(self, correlation: str) -> bool:
        """A command's events, or a preview composed for one of the test's sets or families
        (correlation ``preview:set:<id>``)."""
        return correlation in self.correlations or correlation.rsplit(":", 1)[-1] in self.ids

    def document(self, key: str) -> bool:
        return any(part in self.ids for part in key.split(":"))

    def with_aggregates(self, events: Sequence[Stored]) -> Mine:
        """Also the ids of every aggregate the test's events changed (libraries, payment links)."""
        changed = {event.aggregate_id for event in events if self.event(event.correlation)}
        return Mine(self.correlations, self.ids | changed)


class Load:
    """Shoppers and an uploading contributor, each in a thread, until `stop`."""

    def __init__(self, app: RunningApp, container: Container, shop: Shop) -> None:
        self.run = f"kill9-{uuid.uuid4().hex[:8]}"
        self.client = Client(app.base, self.run)
        self.container = container
        self.icons = shop.icons
        self.set_id = shop.set_id
        self.contributor = shop.owner
        self.shop = shop
        self.uploads: list[Upload] = []
        self.customers: list[str] = []
        self.sessions = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._shop, SHOP_PACE_S), daemon=True),
            threading.Thread(target=self._loop, args=(self._upload, UPLOAD_PACE_S), daemon=True),
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, failed: type[BaseException] | None, *_exc: object) -> None:
        if failed is not None:
            self.client.abort.set()
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=COMMAND_DEADLINE_S * 2)
            assert not thread.is_alive(), "a load thread did not finish"

    def acknowledged(self) -> int:
        return sum(1 for sent in list(self.client.sent) if sent.acknowledged)

    def mine(self) -> Mine:
        sent = list(self.client.sent)
        ids = {
            str(value) for s in sent for name, value in (s.body or {}).items() if name in ID_FIELDS
        }
        ids |= {*self.customers, *(str(u.icon_id) for u in self.uploads), *self.shop.ids()}
        return Mine(frozenset(s.correlation for s in sent), frozenset(ids))

    def _loop(self, step: Callable[[int], None], pace_s: float) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                step(n)
                n += 1
                self._stop.wait(pace_s)  # the load's rate, not a wait for a result
        except BaseException as exc:
            self.errors.append(exc)

    def _bearer(self, who: str, role: str) -> dict[str, str]:
        token = self.container.tokens.issue(Actor(who, frozenset({role}))).access_token
        return {"Authorization": f"Bearer {token}"}

    def _shop(self, n: int) -> None:
        customer = f"{self.run}-c{n}"
        self.customers.append(customer)
        send, auth = self.client.send, self._bearer(customer, "customer")
        first, second = (str(icon) for icon in self.icons)
        cart = send("open_cart", "POST", "/v1/carts", json={"currency": "USD"}, headers=auth)
        if not cart.acknowledged:
            return
        lines = f"/v1/carts/{cart.body['id']}/lines"
        for icon in (first, second):
            line = {"product_kind": "icon", "product_id": icon}
            send("add_line", "POST", lines, json=line, headers=auth)
        send("remove_line", "DELETE", f"{lines}/icon/{first}", headers=auth)
        order = send("checkout", "POST", f"/v1/carts/{cart.body['id']}/checkout", headers=auth)
        if not order.acknowledged:
            return
        paying = send("pay", "POST", f"/v1/orders/{order.body['id']}/payments", headers=auth)
        if paying.acknowledged:
            self._webhook(UUID(order.body["id"]), UUID(paying.body["transaction_id"]))
        self.sessions += 1

    def _webhook(self, order_id: UUID, transaction_id: UUID) -> None:
        """Stripe's signed ``payment_intent.succeeded`` for the attempt (redelivered as is)."""
        transaction: Any = self.container.applications.commerce.repository.get(transaction_id)
        assert isinstance(transaction, Transaction)
        amount = transaction.amount.amount_minor
        event_id = f"evt_{uuid.uuid4().hex}"
        document = {
            "id": event_id,
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": transaction.provider_reference,
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_received": amount,
                    "currency": transaction.amount.currency.lower(),
                    "metadata": {"transaction_id": str(transaction_id), "order_id": str(order_id)},
                }
            },
        }
        body = json.dumps(document).encode()
        secret = self.container.settings.stripe_webhook_secret.encode()
        t = int(time.time())
        signature = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}
        self.client.send(
            "webhook",
            "POST",
            "/v1/webhooks/stripe",
            content=body,
            headers=headers,
            correlation=f"stripe:{event_id}",
        )

    def _upload(self, n: int) -> None:
        auth = self._bearer(self.contributor, "contributor")
        price = {"amount_minor": 0, "currency": "USD"}
        icon = self.client.send(
            "create_icon",
            "POST",
            f"/v1/sets/{self.set_id}/icons",
            json={"name": f"kill9 {n}", "price": price},
            headers=auth,
        )
        if not icon.acknowledged:
            return
        svg = SVG.replace("{nonce}", uuid.uuid4().hex).encode()
        uploaded = self.client.send(
            "upload_svg",
            "PUT",
            f"/v1/icons/{icon.body['id']}/svg",
            content=svg,
            headers={**auth, "Content-Type": "image/svg+xml"},
        )
        if uploaded.acknowledged:
            body = uploaded.body
            self.uploads.append(
                Upload(UUID(icon.body["id"]), body["content_hash"], body["position"])
            )


# --- killing and waiting -------------------------------------------------------------------


@dataclass
class Kill:
    kind: str
    old_pid: int
    new_pid: int = 0
    restarted_s: float = 0.0
    ready_s: float = 0.0


def _grown(
    read: Callable[[], Mapping[Partition, int]], since: Mapping[Partition, int]
) -> dict[Partition, int]:
    """Wait until ``read()`` has moved past ``since`` (the load keeps writing); returns it."""
    now: dict[Partition, int] = {}

    def moved() -> bool:
        now.update(read())
        return sum(now.values()) > sum(since.values())

    assert eventually(moved, WAIT_S, 0.1), (since, now)
    return now


def _ready(kind: str, app: RunningApp, container: Container, load: Load, at_kill: Any) -> None:
    """The restarted process does its work again: the relay publishes, the consumers commit
    offsets past the kill's, the API acknowledges commands."""
    settings = container.settings
    if kind == "relay":
        for context in ("commerce", "catalog"):
            wanted = at_kill[context] + 1
            assert eventually(lambda c=context, w=wanted: head(container, c) >= w, WAIT_S)
            assert wait_for_saved_position(settings, context, wanted, WAIT_S) >= wanted
        # One active relay per log, counted once: the killed one's live gauge is gone.
        assert _relay_active(app) == {"catalog": 1.0, "commerce": 1.0, "identity": 1.0}
    elif kind in ("projections", "media"):
        groups = [g for g in GROUPS if g.startswith("projection-") == (kind == "projections")]
        for group in groups:
            ends = _grown(lambda g=group: ends_of(settings, GROUPS[g]), at_kill[group])
            wait_for_group(container, group, ends)
    elif kind == "api":
        assert eventually(lambda: is_live(app.base, 5), WAIT_S, 0.1)
        acknowledged = load.acknowledged()
        assert eventually(lambda: load.acknowledged() > acknowledged, WAIT_S)


def _mid_render(container: Container, load: Load) -> bool:
    """Whether the last upload is on the catalog topic but its derivatives are not recorded
    yet: the media worker is rendering it (it polls as soon as the relay publishes)."""
    if not load.uploads:
        return False
    last = load.uploads[-1]
    with psycopg.connect(container.settings.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT position FROM relay_positions WHERE log_name = 'catalog'"
        ).fetchone()
    return row is not None and row[0] >= last.position and not _recorded(container, last.icon_id)


def _recorded(container: Container, icon_id: UUID) -> bool:
    events = container.applications.catalog.repository.event_store.get(icon_id)
    return any(isinstance(event, Icon.DerivativesRecorded) for event in events)


def _relay_active(app: RunningApp) -> dict[str, float]:
    """``iconmarket_relay_active`` per log, as /metrics sums it over the processes."""
    metrics = httpx.get(f"{app.base}/metrics", timeout=10).text
    found = {}
    for line in metrics.splitlines():
        if line.startswith('iconmarket_relay_active{log="'):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('"')[1]] = float(value)
    return found


def _state_at_kill(kind: str, container: Container) -> Any:
    settings = container.settings
    if kind == "relay":
        with psycopg.connect(settings.postgres_dsn) as conn:
            rows = conn.execute("SELECT log_name, position FROM relay_positions").fetchall()
        return {name: int(position) for name, position in rows}
    if kind in ("projections", "media"):
        return committed(container, list(GROUPS))
    return None


def kill_and_wait(kind: str, app: RunningApp, container: Container, load: Load) -> Kill:
    settings = container.settings
    supervisor = app.process.pid
    old = children(supervisor, settings)[kind]
    at_kill = _state_at_kill(kind, container)
    if kind == "media":
        # Mid-batch: an upload is being rendered, so the worker's offset must not have been
        # committed yet (its redelivery renders and records it).
        assert eventually(lambda: _mid_render(container, load), WAIT_S, 0.01)
    began = time.monotonic()
    os.kill(old, signal.SIGKILL)
    kill = Kill(kind, old)

    def restarted() -> bool:
        return (
            app.process.poll() is not None or children(supervisor, settings).get(kind, old) != old
        )

    assert eventually(restarted, WAIT_S, 0.05)
    said = [line for line in app.log if not line.startswith("{")]  # the supervisor's own lines
    assert app.process.poll() is None, f"{kind} killed; the supervisor exited:\n{''.join(said)}"
    kill.new_pid = children(supervisor, settings)[kind]
    kill.restarted_s = time.monotonic() - began
    _ready(kind, app, container, load, at_kill)
    kill.ready_s = time.monotonic() - began
    return kill


# --- what the store, the topics and the buckets hold ---------------------------------------


@dataclass(frozen=True)
class Stored:
    correlation: str
    name: str
    aggregate_id: str


def stored_events(container: Container, after: Mapping[str, int]) -> list[Stored]:
    """Every event after ``after`` (per log)."""
    found: list[Stored] = []
    for app in container.applications.all():
        start = after[app.context] + 1
        while True:
            batch = app.recorder.select_notifications(start, limit=1000)
            for notification in batch:
                event = app.mapper.to_domain_event(notification)
                correlation = str(getattr(event, "correlation_id", None))
                name = type(event).__qualname__
                found.append(Stored(correlation, name, str(event.originator_id)))
            if len(batch) < 1000:
                break
            start = batch[-1].id + 1
    return found


def events_by_correlation(container: Container, after: Mapping[str, int]) -> dict[str, list[str]]:
    """The names of the events after ``after`` (per log), grouped by correlation id."""
    found: dict[str, list[str]] = {}
    for event in stored_events(container, after):
        found.setdefault(event.correlation, []).append(event.name)
    return {correlation: sorted(names) for correlation, names in found.items()}


def stored_positions(container: Container, context: str, after: int, until: int) -> list[int]:
    """The positions in (after, until] of ``context``'s log (a rolled-back transaction, such as
    one of a killed API, leaves a gap)."""
    recorder = container.applications.by_context(context).recorder
    found: list[int] = []
    while after < until:
        batch = recorder.select_notifications(
            start=after, limit=1000, stop=until, inclusive_of_start=False
        )
        if not batch:
            break
        found += [n.id for n in batch]
        after = batch[-1].id
    return found


def published_positions(
    settings: Settings, topic: str, since: Mapping[Partition, int]
) -> Counter[int]:
    """How often each position reached ``topic`` after the offsets ``since``."""
    from kafka import KafkaConsumer, TopicPartition

    ends = end_offsets(settings, topic)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=1_000,
    )
    seen: Counter[int] = Counter()
    try:
        partitions = {tp: TopicPartition(*tp) for tp in ends if ends[tp] > since.get(tp, 0)}
        consumer.assign(list(partitions.values()))
        for tp, partition in partitions.items():
            consumer.seek(partition, since.get(tp, 0))
        got = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + WAIT_S
        while any(got[tp] < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, (got, ends)
            for message in consumer:
                tp = (message.topic, message.partition)
                if message.offset < ends[tp]:
                    seen[int(json.loads(message.value)["position"])] += 1
                got[tp] = max(got[tp], message.offset + 1)
                if all(got[p] >= ends[p] for p in partitions):
                    break
    finally:
        consumer.close()
    return seen


def replay_since(
    container: Container, name: str, after: Mapping[str, int], until: Mapping[str, int]
) -> None:
    """Each projection's events in (after, until] of its logs, applied by its projector into a
    new shadow target ``name`` (what `infra.audit.replay.replay_all` does from position 0)."""
    for spec in sorted(SPECS.values(), key=lambda s: s.name == "popularity"):  # onto the catalog
        target = shadow_target(container, spec.name, name)
        shadow = target.shadow(name)
        for context in spec.contexts:
            for page in history(container, context, after[context], until[context]):
                target.apply(shadow, page)
        target.settle(shadow)


def views_against_a_replay(
    container: Container,
    after: Mapping[str, int],
    until: Mapping[str, int],
    mine: Callable[[str], bool],
) -> list[ProjectionDiff]:
    """Every projection's live documents that ``mine`` selects against the same documents of a
    replay of the logs into a new shadow target.

    The replay starts at ``after``, the heads before the test created anything: each selected
    document's aggregates and customers are newer, so it holds their whole history, and stays
    small however long the shared test stack's log grows. The comparison is scoped for the same
    reason: other tests' documents may have changed after ``until``, or started before
    ``after``."""
    name = f"kill9-{uuid.uuid4().hex[:10]}"
    projections = [Projection(spec.name, spec.contexts) for spec in SPECS.values()]
    try:
        replay_since(container, name, after, until)
        results = []
        for projection in projections:
            sides = [
                documents(container, projection.name, where(container, projection.name, side))
                for side in (LIVE, name)
            ]
            live, shadow = ({k: v for k, v in docs.items() if mine(k)} for docs in sides)
            results.append(compare(projection.name, LIVE, name, live, shadow))
        return results
    finally:
        drop_all(container, projections, name)


def _previews_recorded_once(container: Container, shop: Shop, uploads: Sequence[Upload]) -> None:
    """The upload set's and its family's last preview is the grid of all their rendered icons,
    stored, and no grid was recorded twice."""
    digest = member_hash(choose({str(u.icon_id): u.preview() for u in uploads}))
    store = container.applications.catalog.repository.event_store
    for kind, owner_id, recorded_type in (
        ("set", shop.set_id, IconSet.PreviewRecorded),
        ("family", shop.family_id, Family.PreviewRecorded),
    ):
        keys = [e.key for e in store.get(owner_id) if isinstance(e, recorded_type)]
        assert len(set(keys)) == len(keys), keys
        assert keys[-1:] == [preview_key(kind, str(owner_id), digest)]
        assert container.public_store.exists(keys[-1])


@dataclass(frozen=True)
class Quiet:
    """What must not grow: dead letters per source topic, parked events per group, and
    notifications the relay parked."""

    dead_letters: dict[Partition, int]
    parked: dict[str, int]
    relay_parked: int

    @classmethod
    def now(cls, settings: Settings) -> Quiet:
        dlq = [dead_letter_topic(topic_for(context)) for context in CONTEXTS]
        with psycopg.connect(settings.postgres_dsn) as conn:
            row = conn.execute("SELECT count(*) FROM relay_parked").fetchone()
        return cls(
            ends_of(settings, dlq),
            {group: len(parked_rows(settings, group)) for group in GROUPS},
            int(row[0]) if row else 0,
        )


@dataclass(frozen=True)
class Shop:
    """Two priced published icons to buy, and a set their contributor uploads more icons to."""

    owner: str
    icons: tuple[UUID, UUID]
    set_id: UUID
    family_id: UUID
    catalog: Catalog
    start: dict[str, int]
    """Each log's head before any of it was created."""
    offsets: dict[str, dict[Partition, int]]
    """The commerce and catalog topics' end offsets before that."""

    def ids(self) -> set[str]:
        published = self.catalog
        return {
            *(str(i) for i in (*self.icons, self.set_id, self.family_id)),
            *(str(i) for i in (published.set_id, published.family_id)),
        }


@pytest.fixture
def shop(container: Container) -> Shop:
    start = heads(container)
    offsets = {c: end_offsets(container.settings, topic_for(c)) for c in ("commerce", "catalog")}
    bus = container.bus
    owner = f"kill9-owner-{uuid.uuid4().hex[:6]}"
    published = published_catalog(bus, owner, prices=(500, 300), bundle=None)
    contributor = ctx(owner, "contributor")
    family_id = bus.execute(m.CreateFamily(name="Kill 9"), contributor).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Kill 9 Line", style="line"), contributor
    ).aggregate_id
    first, second = published.icon_ids
    return Shop(owner, (first, second), set_id, family_id, published, start, offsets)


def test_kill_9_of_each_process_loses_and_duplicates_nothing(
    settings: Settings, container: Container, shop: Shop
) -> None:
    began = time.monotonic()
    start = shop.start
    quiet = Quiet.now(settings)
    kills: list[Kill] = []
    with app_process(read_timeout_s=WAIT_S, env=APP_ENV) as app:
        with Load(app, container, shop) as load:
            assert eventually(lambda: load.sessions >= 2 and len(load.uploads) >= 2, WAIT_S)
            for kind in processes(settings):  # every process kind iconmarket run supervises
                kills.append(kill_and_wait(kind, app, container, load))
        loaded_s = time.monotonic() - began
        assert load.errors == []
        settled = caught_up(container, load.mine().event)
        settled_s = time.monotonic() - began
        log = "".join(app.log)

    for kill in kills:
        assert f"{kill.kind} (pid {kill.old_pid}) was killed by SIGKILL; restarting it in" in log, (
            kill
        )
        assert f"{kill.kind} restarted (pid {kill.new_pid})" in log, kill
    sent = load.client.sent
    assert [s for s in sent if not s.acknowledged] == []
    webhooks = Counter(s.body["outcome"] for s in sent if s.kind == "webhook")
    assert set(webhooks) <= {"applied", "duplicate"}, webhooks

    mine = load.mine().with_aggregates(stored_events(container, start))
    stored = events_by_correlation(container, start)
    observed = Counter((s.kind, tuple(stored.get(s.correlation, []))) for s in sent)
    wrong = {
        shape: count for shape, count in observed.items() if list(shape[1]) != EXPECTED[shape[0]]
    }
    assert wrong == {}, "commands whose events are not stored exactly once (kind, events): count"
    strays = {
        c: names
        for c, names in stored.items()
        if c.startswith(load.run) and c not in mine.correlations
    }
    assert strays == {}
    checked = sum(len(EXPECTED[s.kind]) for s in sent)

    duplicates = published = 0
    for context in ("commerce", "catalog"):
        seen = published_positions(settings, topic_for(context), shop.offsets[context])
        positions = stored_positions(container, context, start[context], settled[context])
        assert [p for p in positions if seen[p] == 0] == [], f"{context}: not published"
        published += len(positions)
        duplicates += sum(count - 1 for count in seen.values())

    replaying = time.monotonic()
    diffs = views_against_a_replay(container, start, settled, mine.document)
    replay_s = time.monotonic() - replaying
    assert {d.projection: d.differences for d in diffs} == dict.fromkeys(SPECS, 0), [
        (d.projection, d.only_left[:5], d.only_right[:5], list(d.changed.items())[:5])
        for d in diffs
        if d.differences
    ]
    kinds = Counter(s.kind for s in sent)
    assert {d.projection: d.left_count for d in diffs} == {
        "carts": kinds["open_cart"],
        # its orders, the order, its library, its entitlements and its library's owner
        "customers": 5 * kinds["checkout"],
        "catalog": kinds["create_icon"] + 6,  # and the shop's 2 icons, 2 sets, 2 families
        "popularity": 1 + kinds["webhook"],  # the second icon (bought by all) and each library
    }

    private, public = settings.s3_bucket_private, settings.s3_bucket_public
    for upload in load.uploads:
        expected, prefix = upload.keys(), f"derivatives/{upload.content_hash}/"
        assert object_keys(container.s3, private, prefix) == {
            k for k, p in expected.items() if not p
        }
        assert object_keys(container.s3, public, prefix) == {k for k, p in expected.items() if p}
    _previews_recorded_once(container, shop, load.uploads)

    assert Quiet.now(settings) == quiet
    total_s = time.monotonic() - began
    restarts = ", ".join(f"{k.kind} {k.restarted_s:.1f}s/{k.ready_s:.1f}s" for k in kills)
    print(
        f"kill -9 (restarted/ready): {restarts}; commands={len(sent)} "
        f"{dict(kinds)} retried={dict(load.client.retried)} "
        f"webhooks={dict(webhooks)} uploads={len(load.uploads)} events_checked={checked} "
        f"lost=0 duplicated=0 published={published} relay_republished={duplicates} "
        f"views={ {d.projection: d.left_count for d in diffs} } differences=0 dlq=0 parked=0 "
        f"load={loaded_s:.1f}s settled={settled_s:.1f}s replay+diff={replay_s:.1f}s "
        f"(of {sum(settled[c] - start[c] for c in settled)} positions) total={total_s:.1f}s"
    )
