"""Handlers of the identity context."""

from __future__ import annotations

from uuid import UUID

from commands.errors import AccessDenied, AlreadyExists
from commands.handlers.common import authorize, trace
from commands.messages import ChangeRoles, RegisterAccount
from commands.password_hashing import check_strength, hash_password
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.account import Account

SELF_SERVICE_ROLES = frozenset({"customer", "contributor"})


def register_account(cmd: RegisterAccount, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    if not set(cmd.roles) <= SELF_SERVICE_ROLES:
        raise AccessDenied(f"new accounts may only ask for {sorted(SELF_SERVICE_ROLES)}")
    check_strength(cmd.password)
    if uow.exists(Account.create_id(cmd.email)):
        raise AlreadyExists("an account with this e-mail already exists")
    account = Account.register(
        email=cmd.email,
        password_hash=cmd.password_hash or hash_password(cmd.password),
        roles=cmd.roles,
        **trace(ctx),
    )
    return uow.add(account).id


def change_roles(cmd: ChangeRoles, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.ACCOUNT_CHANGE_ROLES, "account")
    account = uow.get(Account, cmd.account_id, expected_version=ctx.expected_version)
    account.change_roles(new_roles=cmd.roles, by_roles=ctx.roles, **trace(ctx))
    return account.id
