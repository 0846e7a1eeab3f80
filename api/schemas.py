"""Request bodies, validated at the edge (a bad body is a 422 listing every field at fault)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Labels = Annotated[list[Label], msgspec.Meta(max_length=30)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Role = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class MoneyBody(msgspec.Struct, forbid_unknown_fields=True):
    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
    currency: Currency


class RegisterBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=2)] = msgspec.field(
        default_factory=lambda: ["customer"]
    )


class RegistrationAccepted(msgspec.Struct):
    """The one answer to every registration that passed validation, whether or not the address
    had an account: which one it was would tell anyone which addresses are customers here."""

    status: str
    detail: str


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    """Either e-mail and password, or a refresh token."""

    email: Email | None = None
    password: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    refresh_token: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


class TokenResponse(msgspec.Struct):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class MeResponse(msgspec.Struct):
    id: str
    roles: list[str]


class RolesBody(msgspec.Struct, forbid_unknown_fields=True):
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=6)]


class FamilyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Text = ""
    categories: Labels = msgspec.field(default_factory=list)
    tags: Labels = msgspec.field(default_factory=list)


class IconSetBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    style: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    bundle_price: MoneyBody | None = None


class IconSetPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    style: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] | None = None
    bundle_price: MoneyBody | None = None
    clear_bundle_price: bool = False


class IconBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    price: MoneyBody
    licence: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] = "standard"
    tags: Labels = msgspec.field(default_factory=list)
    categories: Labels = msgspec.field(default_factory=list)


class IconPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    tags: Labels = msgspec.field(default_factory=list)
    categories: Labels = msgspec.field(default_factory=list)


class PriceBody(msgspec.Struct, forbid_unknown_fields=True):
    price: MoneyBody


class LicenceBody(msgspec.Struct, forbid_unknown_fields=True):
    licence: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class CartBody(msgspec.Struct, forbid_unknown_fields=True):
    currency: Currency = "USD"


class CartLineBody(msgspec.Struct, forbid_unknown_fields=True):
    product_kind: Annotated[str, msgspec.Meta(min_length=1, max_length=10)]
    product_id: UUID


class CancelBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] = "cancelled by the customer"
