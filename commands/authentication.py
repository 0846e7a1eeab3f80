"""Checking credentials: part of the write side, since it reads the Account aggregate itself."""

from __future__ import annotations

from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from commands.applications import Applications
from commands.errors import AggregateNotFound, Unauthenticated
from commands.policy import Actor
from commands.unit_of_work import UnitOfWork
from domain.account import Account

_hasher = PasswordHasher()
# Verified when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("iconmarket-timing-equaliser")
_WRONG = "wrong e-mail or password"


def _account(apps: Applications, account_id: UUID) -> Account | None:
    try:
        return UnitOfWork.read(apps.identity, Account, account_id)
    except AggregateNotFound:
        return None


def _roles(account: Account) -> frozenset[str]:
    return frozenset(str(role) for role in account.roles)


def authenticate(apps: Applications, email: str, password: str) -> Actor:
    account = _account(apps, Account.create_id(email))
    try:
        _hasher.verify(account.password_hash if account else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthenticated(_WRONG) from None
    if account is None:
        raise Unauthenticated(_WRONG)
    return Actor(id=str(account.id), roles=_roles(account))


def current_roles(apps: Applications, actor_id: str) -> frozenset[str]:
    """The account's roles now (a refresh re-reads them, so role changes reach new tokens)."""
    try:
        account = _account(apps, UUID(actor_id))
    except ValueError:
        account = None
    if account is None:
        raise Unauthenticated(
            "a valid refresh token is required", reason="the account no longer exists"
        )
    return _roles(account)
