"""Command messages: frozen, keyword-only dataclasses with imperative names.

A field marked ``secret`` never enters an idempotency fingerprint or a repr.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from uuid import UUID


def _secret() -> str:
    return field(repr=False, metadata={"secret": True})  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class Money:
    amount_minor: int
    currency: str


# --- identity


@dataclass(frozen=True, kw_only=True)
class RegisterAccount:
    """``password_hash``, when given, is ``password`` already hashed (the API hashes on threads
    of its own, `commands.password_hashing`); else the handler hashes it."""

    email: str
    password: str = _secret()
    roles: tuple[str, ...] = ("customer",)
    password_hash: str = field(default="", repr=False, metadata={"secret": True})


@dataclass(frozen=True, kw_only=True)
class ChangeRoles:
    account_id: UUID
    roles: tuple[str, ...]


# --- catalog


@dataclass(frozen=True, kw_only=True)
class CreateFamily:
    name: str
    description: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class UpdateFamily:
    family_id: UUID
    name: str
    description: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PublishFamily:
    family_id: UUID


@dataclass(frozen=True, kw_only=True)
class UnpublishFamily:
    family_id: UUID


@dataclass(frozen=True, kw_only=True)
class CreateIconSet:
    family_id: UUID
    name: str
    style: str
    bundle_price: Money | None = None


@dataclass(frozen=True, kw_only=True)
class UpdateIconSet:
    set_id: UUID
    name: str | None = None
    style: str | None = None
    bundle_price: Money | None = None
    clear_bundle_price: bool = False


@dataclass(frozen=True, kw_only=True)
class PublishIconSet:
    set_id: UUID


@dataclass(frozen=True, kw_only=True)
class UnpublishIconSet:
    set_id: UUID


@dataclass(frozen=True, kw_only=True)
class CreateIcon:
    set_id: UUID
    name: str
    price: Money
    licence: str = "standard"
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class UpdateIconDetails:
    icon_id: UUID
    name: str
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ChangeIconPrice:
    icon_id: UUID
    price: Money


@dataclass(frozen=True, kw_only=True)
class ChangeIconLicence:
    icon_id: UUID
    licence: str


@dataclass(frozen=True, kw_only=True, repr=False)
class SvgOriginal:
    """A stored, sanitised original; ``render_cost`` is the policy's estimate (cost units)."""

    key: str
    content_hash: str
    size_bytes: int
    width: int
    height: int
    render_cost: int | None = None

    def __repr__(self) -> str:
        # A request's fingerprint holds this text (`commands.bus.fingerprint`): without an
        # estimate it is the text of before ``render_cost`` existed, so a request recorded then
        # (the demo catalog's originals, say) is still the same request under its key.
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)]
        if self.render_cost is None:
            shown.pop()
        return f"SvgOriginal({', '.join(shown)})"


@dataclass(frozen=True, kw_only=True)
class RecordOriginal:
    icon_id: UUID
    original: SvgOriginal


@dataclass(frozen=True, kw_only=True)
class ReviseSvg:
    icon_id: UUID
    original: SvgOriginal


@dataclass(frozen=True, kw_only=True)
class DerivativeItem:
    kind: str
    size: int
    key: str
    size_bytes: int


@dataclass(frozen=True, kw_only=True)
class RecordDerivatives:
    """Renderings of ``source_hash`` with their lineage (renderer version, parameters, preview)."""

    icon_id: UUID
    source_hash: str
    renderer_version: str
    items: tuple[DerivativeItem, ...]
    parameters: tuple[tuple[str, int | str], ...] = ()
    preview_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordRenderRefusal:
    """The media workers quarantine the original ``source_hash``: rendering it failed
    (``code``: render_timeout, render_failed or render_crashed; ``detail`` says how)."""

    icon_id: UUID
    source_hash: str
    renderer_version: str
    code: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class RecordDownload:
    """A customer downloads ``format`` (at ``size`` px for raster formats) of an icon they may
    download: a free one, or one they are entitled to (the SVG original needs an entitlement)."""

    icon_id: UUID
    format: str
    size: int | None = None


@dataclass(frozen=True, kw_only=True)
class RecordIconSetPreview:
    set_id: UUID
    key: str
    member_hash: str
    icon_ids: tuple[UUID, ...]


@dataclass(frozen=True, kw_only=True)
class RecordFamilyPreview:
    family_id: UUID
    key: str
    member_hash: str
    icon_ids: tuple[UUID, ...]


@dataclass(frozen=True, kw_only=True)
class PublishIcon:
    icon_id: UUID


@dataclass(frozen=True, kw_only=True)
class UnpublishIcon:
    icon_id: UUID


@dataclass(frozen=True, kw_only=True)
class RetireIcon:
    icon_id: UUID


# --- commerce


@dataclass(frozen=True, kw_only=True)
class OpenCart:
    currency: str = "USD"


@dataclass(frozen=True, kw_only=True)
class AddToCart:
    cart_id: UUID
    product_kind: str
    product_id: UUID


@dataclass(frozen=True, kw_only=True)
class RemoveFromCart:
    cart_id: UUID
    product_kind: str
    product_id: UUID


@dataclass(frozen=True, kw_only=True)
class ClearCart:
    cart_id: UUID


@dataclass(frozen=True, kw_only=True)
class CheckOut:
    cart_id: UUID


@dataclass(frozen=True, kw_only=True)
class ExpireCart:
    """Ends an open cart with no event for at least ``idle_s`` seconds (the sweeper's)."""

    cart_id: UUID
    idle_s: int


@dataclass(frozen=True, kw_only=True)
class CancelOrder:
    order_id: UUID
    reason: str = "cancelled by the customer"


@dataclass(frozen=True, kw_only=True)
class AddFavourite:
    icon_id: UUID


@dataclass(frozen=True, kw_only=True)
class RemoveFavourite:
    icon_id: UUID


# --- media ingestion (catalog)


@dataclass(frozen=True, kw_only=True)
class ImportedIcon:
    file: str
    icon_id: UUID


@dataclass(frozen=True, kw_only=True)
class ImportRejection:
    file: str
    code: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class RequestImport:
    """Record a zip batch stored in staging at ``zip_key`` as a pending import into a set (the
    import worker runs it as the requesting actor, with the roles the actor has now)."""

    set_id: UUID
    zip_hash: str
    request_key: str
    zip_key: str
    size_bytes: int


@dataclass(frozen=True, kw_only=True)
class CompleteImport:
    """Record what a pending import created in its set and what it refused, one reason per
    file (the import worker)."""

    import_id: UUID
    created: tuple[ImportedIcon, ...]
    rejected: tuple[ImportRejection, ...]


@dataclass(frozen=True, kw_only=True)
class RefuseImport:
    """Record that a pending import's zip was refused as a whole (``code``: the rule broken);
    nothing was created (the import worker)."""

    import_id: UUID
    code: str
    detail: str


# --- payments (commerce)


@dataclass(frozen=True, kw_only=True)
class StartPayment:
    """Open the next payment attempt of an order (a free order is paid and fulfilled at once);
    an attempt already in progress is returned again, nothing appended."""

    order_id: UUID
    provider: str = "stripe"


@dataclass(frozen=True, kw_only=True)
class RecordPaymentIntent:
    transaction_id: UUID
    provider_reference: str


@dataclass(frozen=True, kw_only=True)
class SettlePayment:
    """The provider captured ``captured`` for the transaction (found by id or intent)."""

    transaction_id: UUID | None
    provider_reference: str
    captured: Money


@dataclass(frozen=True, kw_only=True)
class FailPayment:
    transaction_id: UUID | None
    provider_reference: str | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class RecordRefund:
    transaction_id: UUID | None
    provider_reference: str | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class RecordDispute:
    transaction_id: UUID | None
    provider_reference: str | None
    reason: str
