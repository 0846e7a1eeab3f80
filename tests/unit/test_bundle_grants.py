"""Bundles on the in-memory store: a set records its icons as they are created, and a paid set
line grants the set's icons that are sellable when the payment settles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest

from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.errors import AggregateNotFound
from commands.handlers.grants import icons_to_grant, sellable_members
from commands.payments.service import PaymentService
from commands.payments.webhooks import ProviderEvent, handle_event
from commands.routes import ROUTES
from commands.unit_of_work import UnitOfWork
from domain.icon_set import IconSet
from domain.library import Library
from domain.order import Order, OrderStatus
from tests.fakes.payment_provider import FakePaymentProvider
from tests.support import SERVICE, Catalog, ctx, log_heads, published_catalog

CUSTOMER = "bundle-cust"
OWNER = "bundle-owner"
WHO = ctx(CUSTOMER, "customer")
CONTRIBUTOR = ctx(OWNER, "contributor")
PAY_EVENTS = [
    "Order.PaymentStarted",
    "Transaction.Started",
    "Transaction.IntentCreated",
    "PaymentIntentLink.Linked",
]


@dataclass
class World:
    apps: Applications
    bus: CommandBus
    provider: FakePaymentProvider
    payments: PaymentService
    catalog: Catalog

    def order(self, *products: tuple[str, UUID]) -> UUID:
        cart_id = self.bus.execute(m.OpenCart(currency="USD"), WHO).aggregate_id
        for kind, product_id in products:
            self.bus.execute(
                m.AddToCart(cart_id=cart_id, product_kind=kind, product_id=product_id), WHO
            )
        return self.bus.execute(m.CheckOut(cart_id=cart_id), WHO).aggregate_id

    def pay_and_settle(self, order_id: UUID) -> None:
        outcome = self.payments.pay(order_id, WHO)
        reference = outcome.provider_reference
        assert reference is not None
        intent = self.provider.intents[reference]
        obj: dict[str, object] = {
            "id": reference,
            "amount": intent.amount.amount_minor,
            "amount_received": intent.amount.amount_minor,
            "currency": intent.amount.currency.lower(),
            "metadata": dict(intent.metadata),
        }
        event = ProviderEvent(f"evt_{uuid.uuid4().hex}", "payment_intent.succeeded", obj)
        handle_event(self.bus, self.provider, event)

    def get_order(self, order_id: UUID) -> Order:
        return UnitOfWork.read(self.apps.commerce, Order, order_id)

    def library(self) -> Library:
        return UnitOfWork.read(self.apps.commerce, Library, Library.create_id(CUSTOMER))

    def commerce_events(self, heads: dict[str, int]) -> list[str]:
        notifications = self.apps.commerce.recorder.select_notifications(
            heads["commerce"] + 1, limit=1000
        )
        return [n.topic.split(":")[1] for n in notifications]

    def draft_icon(self, name: str) -> UUID:
        create = m.CreateIcon(
            set_id=self.catalog.set_id,
            name=name,
            price=m.Money(amount_minor=300, currency="USD"),
        )
        return self.bus.execute(create, CONTRIBUTOR).aggregate_id

    def revise(self, icon_id: UUID) -> None:
        """A new SVG revision, rendered, so the icon is sellable again at the next version."""
        content_hash = f"sha256-{uuid.uuid4().hex}"
        original = m.SvgOriginal(
            key=f"originals/{content_hash}.svg",
            content_hash=content_hash,
            size_bytes=321,
            width=24,
            height=24,
        )
        self.bus.execute(m.ReviseSvg(icon_id=icon_id, original=original), CONTRIBUTOR)
        item = m.DerivativeItem(
            kind="png", size=64, key=f"d/{content_hash}/png-64.png", size_bytes=900
        )
        self.bus.execute(
            m.RecordDerivatives(
                icon_id=icon_id, source_hash=content_hash, renderer_version="r1", items=(item,)
            ),
            SERVICE,
        )


@pytest.fixture
def world() -> Iterator[World]:
    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    catalog = published_catalog(bus, OWNER, prices=(500, 0, 250), bundle=900)
    provider = FakePaymentProvider()
    yield World(apps, bus, provider, PaymentService(bus, provider), catalog)
    apps.close()


def _set(world: World) -> IconSet:
    return UnitOfWork.read(world.apps.catalog, IconSet, world.catalog.set_id)


def test_creating_an_icon_records_it_in_its_set_in_the_same_save(world: World) -> None:
    heads = log_heads(world.apps)
    set_version = _set(world).version

    icon_id = world.draft_icon("arrow draft")

    notifications = world.apps.catalog.recorder.select_notifications(heads["catalog"] + 1, limit=10)
    events = [world.apps.catalog.mapper.to_domain_event(n) for n in notifications]
    assert [(type(e).__qualname__, e.originator_id) for e in events] == [
        ("IconSet.IconAdded", world.catalog.set_id),
        ("Icon.Created", icon_id),
    ]
    assert getattr(events[0], "icon_id") == icon_id  # noqa: B009 - a dynamic event field
    icon_set = _set(world)
    assert icon_set.member_icon_ids == (*world.catalog.icon_ids, icon_id)
    assert icon_set.version == set_version + 1


def test_creating_an_icon_in_a_missing_set_appends_nothing(world: World) -> None:
    heads = log_heads(world.apps)
    create = m.CreateIcon(
        set_id=uuid.uuid4(), name="orphan", price=m.Money(amount_minor=1, currency="USD")
    )
    with pytest.raises(AggregateNotFound):
        world.bus.execute(create, CONTRIBUTOR)
    assert world.apps.catalog.recorder.max_notification_id() == heads["catalog"]


def test_only_sellable_members_resolve_at_their_current_revision(world: World) -> None:
    first, second, third = world.catalog.icon_ids
    world.draft_icon("arrow draft")
    world.bus.execute(m.UnpublishIcon(icon_id=second), CONTRIBUTOR)
    world.revise(third)
    uow = UnitOfWork(world.apps, "commerce")

    assert sellable_members(uow, world.catalog.set_id) == {first: 1, third: 2}


def test_a_paid_bundle_grants_the_sellable_icons_at_settlement_and_is_fulfilled(
    world: World,
) -> None:
    first, second, third = world.catalog.icon_ids
    draft = world.draft_icon("arrow draft")
    order_id = world.order(("set", world.catalog.set_id))
    world.bus.execute(m.RetireIcon(icon_id=third), CONTRIBUTOR)  # after checkout, before payment

    heads = log_heads(world.apps)
    world.pay_and_settle(order_id)

    assert world.commerce_events(heads) == [
        *PAY_EVENTS,
        "Transaction.Succeeded",
        "Order.Paid",
        "Order.Fulfilled",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    assert world.get_order(order_id).status is OrderStatus.FULFILLED
    granted = {(e.icon_id, e.icon_version, e.order_id) for e in world.library().entitlements}
    assert granted == {(first, 1, order_id), (second, 1, order_id)}
    assert not world.library().is_entitled(draft)


def test_an_icon_bought_alone_and_in_the_bundle_is_granted_once_at_the_newer_version(
    world: World,
) -> None:
    first, second, third = world.catalog.icon_ids
    order_id = world.order(("icon", first), ("set", world.catalog.set_id))
    world.revise(first)
    uow = UnitOfWork(world.apps, "commerce")

    assert icons_to_grant(uow, world.get_order(order_id)) == {first: 2, second: 1, third: 1}

    world.pay_and_settle(order_id)
    entitlements = world.library().entitlements
    assert sorted((e.icon_id, e.icon_version) for e in entitlements) == sorted(
        [(first, 2), (second, 1), (third, 1)]
    )


def test_a_bundle_with_nothing_sellable_is_fulfilled_granting_nothing_and_refunds(
    world: World,
) -> None:
    order_id = world.order(("set", world.catalog.set_id))
    for icon_id in world.catalog.icon_ids:
        world.bus.execute(m.UnpublishIcon(icon_id=icon_id), CONTRIBUTOR)

    heads = log_heads(world.apps)
    world.pay_and_settle(order_id)

    assert world.commerce_events(heads) == [
        *PAY_EVENTS,
        "Transaction.Succeeded",
        "Order.Paid",
        "Order.Fulfilled",
    ]
    assert world.get_order(order_id).status is OrderStatus.FULFILLED

    heads = log_heads(world.apps)
    world.payments.refund(order_id, ctx("admin-1", "admin"), reason="empty bundle")
    assert world.commerce_events(heads) == ["Transaction.Refunded", "Order.Refunded"]
    assert world.get_order(order_id).status is OrderStatus.REFUNDED


def test_refunding_a_bundle_revokes_its_icons(world: World) -> None:
    order_id = world.order(("set", world.catalog.set_id))
    world.pay_and_settle(order_id)
    assert len(world.library().entitlements) == 3

    heads = log_heads(world.apps)
    world.payments.refund(order_id, ctx("admin-1", "admin"), reason="asked")

    assert world.commerce_events(heads) == [
        "Transaction.Refunded",
        "Order.Refunded",
        "Library.EntitlementsRevoked",
    ]
    assert world.library().entitlements == ()
