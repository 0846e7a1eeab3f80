"""Handlers of the identity context."""

from __future__ import annotations

from uuid import UUID

from argon2 import PasswordHasher

from commands.errors import AccessDenied, AlreadyExists, WeakPassword
from commands.handlers.common import authorize, trace
from commands.messages import ChangeRoles, RegisterAccount
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.account import Account

SELF_SERVICE_ROLES = frozenset({"customer", "contributor"})
hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def register_account(cmd: RegisterAccount, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    if not set(cmd.roles) <= SELF_SERVICE_ROLES:
        raise AccessDenied(f"new accounts may only ask for {sorted(SELF_SERVICE_ROLES)}")
    if len(cmd.password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if uow.exists(Account.create_id(cmd.email)):
        raise AlreadyExists("an account with this e-mail already exists")
    account = Account.register(
        email=cmd.email,
        password_hash=hasher.hash(cmd.password),
        roles=cmd.roles,
        **trace(ctx),
    )
    return uow.add(account).id


def change_roles(cmd: ChangeRoles, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.ACCOUNT_CHANGE_ROLES, "account")
    account = uow.get(Account, cmd.account_id, expected_version=ctx.expected_version)
    account.change_roles(new_roles=cmd.roles, by_roles=ctx.roles, **trace(ctx))
    return account.id
