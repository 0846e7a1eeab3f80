"""The access policy, in one place: ``decide(actor, action, resource)``.

Order of the rules: DenyAll first → Admin/SuperAdmin → ownership (with the action's role) →
default deny. Auditors hold one permission only: reading the history (`audit.read`, which
administrators hold too; every other role is refused it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    FAMILY_CREATE = "family.create"
    FAMILY_UPDATE = "family.update"
    FAMILY_PUBLISH = "family.publish"
    SET_CREATE = "set.create"
    SET_UPDATE = "set.update"
    SET_PUBLISH = "set.publish"
    ICON_CREATE = "icon.create"
    ICON_UPDATE = "icon.update"
    ICON_PUBLISH = "icon.publish"
    ICON_RETIRE = "icon.retire"
    CART_CREATE = "cart.create"
    CART_MODIFY = "cart.modify"
    CART_CHECKOUT = "cart.checkout"
    CART_READ = "cart.read"
    CART_EXPIRE = "cart.expire"
    ORDER_CANCEL = "order.cancel"
    FAVOURITES_MODIFY = "favourites.modify"
    ACCOUNT_READ_SELF = "account.read_self"
    ACCOUNT_CHANGE_ROLES = "account.change_roles"
    AUDIT_READ = "audit.read"
    MEDIA_RECORD = "media.record"
    ICON_DOWNLOAD = "icon.download"
    IMPORT_READ = "import.read"
    ORDER_PAY = "order.pay"
    ORDER_REFUND = "order.refund"
    PAYMENT_RECORD = "payment.record"


@dataclass(frozen=True)
class Actor:
    id: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Resource:
    """What the action is on: its kind and owner (None when the action creates it)."""

    kind: str
    owner_id: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class _Rule:
    roles: frozenset[str]
    owner_only: bool


_CONTRIBUTOR = frozenset({"contributor"})
_CUSTOMER = frozenset({"customer"})
_ANY_MEMBER = frozenset({"customer", "contributor", "auditor"})

RULES: dict[Action, _Rule] = {
    Action.FAMILY_CREATE: _Rule(_CONTRIBUTOR, owner_only=False),
    Action.FAMILY_UPDATE: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.FAMILY_PUBLISH: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.SET_CREATE: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.SET_UPDATE: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.SET_PUBLISH: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.ICON_CREATE: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.ICON_UPDATE: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.ICON_PUBLISH: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.ICON_RETIRE: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.IMPORT_READ: _Rule(_CONTRIBUTOR, owner_only=True),
    Action.CART_CREATE: _Rule(_CUSTOMER, owner_only=False),
    Action.CART_MODIFY: _Rule(_CUSTOMER, owner_only=True),
    Action.CART_CHECKOUT: _Rule(_CUSTOMER, owner_only=True),
    Action.CART_READ: _Rule(_CUSTOMER, owner_only=True),
    # Idle carts are expired by the sweeper, which acts as the "service" role.
    Action.CART_EXPIRE: _Rule(frozenset({"service"}), owner_only=False),
    Action.ORDER_CANCEL: _Rule(_CUSTOMER, owner_only=True),
    Action.FAVOURITES_MODIFY: _Rule(_CUSTOMER, owner_only=True),
    Action.ACCOUNT_READ_SELF: _Rule(_ANY_MEMBER, owner_only=True),
    Action.AUDIT_READ: _Rule(frozenset({"auditor"}), owner_only=False),
    # Rendering results are recorded by the media workers, which act as the "service" role.
    Action.MEDIA_RECORD: _Rule(frozenset({"service"}), owner_only=False),
    # A download is recorded in the customer's own library.
    Action.ICON_DOWNLOAD: _Rule(_CUSTOMER, owner_only=True),
    Action.ORDER_PAY: _Rule(_CUSTOMER, owner_only=True),
    # Provider outcomes (webhooks, reconciliation) are recorded by the "service" role.
    Action.PAYMENT_RECORD: _Rule(frozenset({"service"}), owner_only=False),
    # ACCOUNT_CHANGE_ROLES has no rule: only the admin step allows it.
    # ORDER_REFUND has no rule either: refunds are for administrators.
}


def decide(actor: Actor, action: Action, resource: Resource) -> Decision:
    if "denyall" in actor.roles:
        return Decision(False, "the account is blocked (denyall)")
    if actor.roles & {"admin", "superadmin"}:
        return Decision(True, "administrator")
    rule = RULES.get(action)
    if rule is None:
        return Decision(False, f"{action} is reserved to administrators")
    if not actor.roles & rule.roles:
        return Decision(False, f"{action} needs one of the roles {sorted(rule.roles)}")
    if rule.owner_only and resource.owner_id != actor.id:
        return Decision(False, f"only the owner of this {resource.kind} may {action}")
    return Decision(True, "owner" if rule.owner_only else "role")
