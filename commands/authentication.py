"""Checking credentials: part of the write side, since it reads the Account aggregate itself.
The password check itself runs on the hashing threads (`commands.password_hashing`)."""

from __future__ import annotations

from uuid import UUID

from commands.applications import Applications
from commands.errors import AggregateNotFound, Unauthenticated
from commands.password_hashing import hash_password
from commands.policy import Actor
from commands.unit_of_work import UnitOfWork
from domain.account import Account

# Checked when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = hash_password("iconmarket-timing-equaliser")
_WRONG = "wrong e-mail or password"


def _account(apps: Applications, account_id: UUID) -> Account | None:
    # A current read: a token carries the account's sessions version as read here, and one
    # older than the last role change would be refused (a cached copy may be that old).
    try:
        return UnitOfWork.read(apps.identity, Account, account_id, current=True)
    except AggregateNotFound:
        return None


def _roles(account: Account) -> frozenset[str]:
    return frozenset(str(role) for role in account.roles)


def account_for(apps: Applications, email: str) -> Account | None:
    """The account registered with ``email``, if any."""
    return _account(apps, Account.create_id(email))


def hash_to_check(account: Account | None) -> str:
    """The hash a login's password is checked against: the account's, or a dummy one of the
    same cost when there is no such account."""
    return account.password_hash if account else _DUMMY_HASH


def authenticated(account: Account | None, password_matched: bool) -> Actor:
    """The actor a login names, once its password was checked against `hash_to_check`."""
    if account is None or not password_matched:
        raise Unauthenticated(_WRONG)
    return Actor(id=str(account.id), roles=_roles(account))


def current_account(apps: Applications, actor_id: str) -> tuple[Actor, int]:
    """The account's actor (its roles now) and sessions version: a refresh re-reads them, so
    role changes reach new tokens."""
    try:
        account = _account(apps, UUID(actor_id))
    except ValueError:
        account = None
    if account is None:
        raise Unauthenticated(
            "a valid refresh token is required", reason="the account no longer exists"
        )
    return Actor(id=str(account.id), roles=_roles(account)), account.sessions_version


def sessions_version_of(apps: Applications, account_id: str) -> int:
    """The account's sessions version in the event store now (0 for no such account)."""
    try:
        account = _account(apps, UUID(account_id))
    except ValueError:
        return 0
    return account.sessions_version if account else 0
