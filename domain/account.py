"""The Account aggregate: a person's login identity and roles."""

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Self
from uuid import UUID

from eventsourcing.domain import event

from domain.choices import parse_choice
from domain.errors import ErrorCode, Forbidden, InvalidValue
from domain.ids import account_id_for, normalise_email
from domain.traced_aggregate import TracedAggregate


class Role(StrEnum):
    CUSTOMER = "customer"
    CONTRIBUTOR = "contributor"
    ADMIN = "admin"
    SUPERADMIN = "superadmin"
    AUDITOR = "auditor"
    DENYALL = "denyall"


ROLE_MANAGERS = frozenset({Role.ADMIN, Role.SUPERADMIN})
PRIVILEGED_ROLES = frozenset({Role.ADMIN, Role.SUPERADMIN})

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ARGON2_PREFIX = "$argon2"


def parse_roles(roles: Iterable[str]) -> frozenset[Role]:
    return frozenset(parse_choice(Role, role) for role in roles)


class Account(TracedAggregate):
    """Its id derives from the normalised e-mail, so registering an address twice collides.

    The domain stores an argon2 hash computed outside it, never a password.
    """

    class Registered(TracedAggregate.Created):
        email: str
        password_hash: str
        roles: list[str]

    class RolesChanged(TracedAggregate.Event):
        roles: list[str]

    class PasswordChanged(TracedAggregate.Event):
        password_hash: str

    @staticmethod
    def create_id(email: str) -> UUID:
        return account_id_for(email)

    @classmethod
    def register(
        cls,
        *,
        email: str,
        password_hash: str,
        roles: Iterable[str] = (Role.CUSTOMER,),
        actor: str,
        correlation_id: str,
    ) -> Self:
        normalised = normalise_email(email)
        _check_email(normalised)
        _check_password_hash(password_hash)
        return cls(
            email=normalised,
            password_hash=password_hash,
            roles=_sorted_values(_non_empty_roles(roles)),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Registered)
    def __init__(
        self,
        *,
        email: str,
        password_hash: str,
        roles: list[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._email = email
        self._password_hash = password_hash
        self._roles = list(roles)
        self._sessions_version = 0

    @property
    def email(self) -> str:
        return self._email

    @property
    def password_hash(self) -> str:
        return self._password_hash

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(role) for role in self._roles)

    @property
    def sessions_version(self) -> int:
        """The version of the last event that ends the account's sessions (a role change,
        a block, a new password), 0 before any: a token issued before it is no longer valid."""
        return self._sessions_version

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def change_roles(
        self,
        *,
        new_roles: Iterable[str],
        by_roles: Iterable[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        """Replaces the roles; ``by_roles`` are the acting account's roles.

        Admins and superadmins may change roles; only a superadmin may grant or revoke admin or
        superadmin, or block (``denyall``) or unblock an admin or superadmin; and no account
        may lift its own block, whoever it is. Setting the current roles again records nothing.
        """
        target = _non_empty_roles(new_roles)
        acting = parse_roles(by_roles)
        self._check_may_change_roles(acting)
        if actor == str(self.id) and Role.DENYALL in self.roles - target:
            raise Forbidden(
                ErrorCode.OWN_BLOCK_FORBIDDEN, "an account cannot lift its own block (denyall)"
            )
        self._check_may_change_privileged(acting, target ^ self.roles, target | self.roles)
        if target != self.roles:
            self._roles_changed(
                roles=_sorted_values(target), actor=actor, correlation_id=correlation_id
            )

    def change_password_hash(self, *, password_hash: str, actor: str, correlation_id: str) -> None:
        _check_password_hash(password_hash)
        self._password_changed(
            password_hash=password_hash, actor=actor, correlation_id=correlation_id
        )

    def _check_may_change_roles(self, acting: frozenset[Role]) -> None:
        if not acting & ROLE_MANAGERS:
            raise Forbidden(
                ErrorCode.ROLES_CHANGE_FORBIDDEN, "only an admin or superadmin may change roles"
            )

    def _check_may_change_privileged(
        self, acting: frozenset[Role], changed: frozenset[Role], involved: frozenset[Role]
    ) -> None:
        if Role.SUPERADMIN in acting:
            return
        if changed & PRIVILEGED_ROLES:
            raise Forbidden(
                ErrorCode.PRIVILEGED_ROLE_CHANGE_FORBIDDEN,
                "only a superadmin may grant or revoke admin or superadmin",
            )
        if Role.DENYALL in changed and involved & PRIVILEGED_ROLES:
            raise Forbidden(
                ErrorCode.PRIVILEGED_ROLE_CHANGE_FORBIDDEN,
                "only a superadmin may block or unblock an admin or superadmin",
            )

    @event(RolesChanged)
    def _roles_changed(self, *, roles: list[str], actor: str, correlation_id: str) -> None:
        self._roles = list(roles)
        self._sessions_version = self.version + 1  # the version this event gives the account

    @event(PasswordChanged)
    def _password_changed(self, *, password_hash: str, actor: str, correlation_id: str) -> None:
        self._password_hash = password_hash
        self._sessions_version = self.version + 1


def _non_empty_roles(roles: Iterable[str]) -> frozenset[Role]:
    parsed = parse_roles(roles)
    if not parsed:
        raise InvalidValue(ErrorCode.ROLES_EMPTY, "an account needs at least one role")
    return parsed


def _sorted_values(roles: frozenset[Role]) -> list[str]:
    return sorted(role.value for role in roles)


def _check_email(email: str) -> None:
    if not _EMAIL.fullmatch(email):
        raise InvalidValue(ErrorCode.INVALID_EMAIL, f"not an e-mail address: {email!r}")


def _check_password_hash(password_hash: str) -> None:
    if not password_hash.startswith(_ARGON2_PREFIX):
        raise InvalidValue(
            ErrorCode.INVALID_PASSWORD_HASH, "expected an argon2 hash, never a password"
        )
