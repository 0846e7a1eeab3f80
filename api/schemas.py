"""Request bodies, validated at the edge (a bad body is a 422 listing every field at fault)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.account import Role
from domain.icon_set import IconStyle
from domain.products import Licence, ProductKind

# The patterns state what the domain accepts, so that a body the schema allows is one the
# domain takes: a name or label has a character other than white space (the domain collapses
# white space and refuses what is left empty), an e-mail address has a dot in its domain, and
# no text holds U+0000 (PostgreSQL's jsonb and text cannot, so the audit could not read such
# an event). They
# mean the same in Python (msgspec, the domain) and in JSON Schema's ECMA-262: white space is
# spelt out (the dialects' ``\s`` differ: U+001C-U+001F, U+0085, U+FEFF), and a whole-string
# pattern ends in ``(?![\s\S])``, not ``$`` (Python's also matches before a final newline).
WHITE_SPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0"
    "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
"""A class body of the characters Python's ``str.split()`` splits on (``str.isspace``)."""
END = "(?![\\s\\S])"
"""The end of the string, in both dialects."""
NO_NUL = f"^[^\\x00]*{END}"
"""Text without U+0000."""
_PRINTED = f"^[^\\x00]*[^\\x00{WHITE_SPACE}][^\\x00]*{END}"
"""Text without U+0000 and with a character other than white space."""
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=_PRINTED)]
Text = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=_PRINTED)]
Labels = Annotated[list[Label], msgspec.Meta(max_length=30)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_NUL)]
_ADDRESS_PART = f"[^@\\x00{WHITE_SPACE}]+"
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=5,
        max_length=254,
        pattern=f"^{_ADDRESS_PART}@{_ADDRESS_PART}\\.{_ADDRESS_PART}{END}",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256)]
Currency = Annotated[str, msgspec.Meta(pattern=f"^[A-Z]{{3}}{END}")]
SelfServiceRole = Literal["customer", "contributor"]
"""The roles an account may ask for when it registers (`commands.handlers.identity`)."""


class MoneyBody(msgspec.Struct, forbid_unknown_fields=True):
    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
    currency: Currency


class RegisterBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    roles: Annotated[list[SelfServiceRole], msgspec.Meta(min_length=1, max_length=2)] = (
        msgspec.field(default_factory=lambda: ["customer"])
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
    style: IconStyle
    bundle_price: MoneyBody | None = None


class IconSetPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    style: IconStyle | None = None
    bundle_price: MoneyBody | None = None
    clear_bundle_price: bool = False


class IconBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    price: MoneyBody
    licence: Licence = Licence.STANDARD
    tags: Labels = msgspec.field(default_factory=list)
    categories: Labels = msgspec.field(default_factory=list)


class IconPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    tags: Labels = msgspec.field(default_factory=list)
    categories: Labels = msgspec.field(default_factory=list)


class PriceBody(msgspec.Struct, forbid_unknown_fields=True):
    price: MoneyBody


class LicenceBody(msgspec.Struct, forbid_unknown_fields=True):
    licence: Licence


class CartBody(msgspec.Struct, forbid_unknown_fields=True):
    currency: Currency = "USD"


class CartLineBody(msgspec.Struct, forbid_unknown_fields=True):
    product_kind: ProductKind
    product_id: UUID


class CancelBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = "cancelled by the customer"
