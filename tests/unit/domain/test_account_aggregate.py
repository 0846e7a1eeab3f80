from collections.abc import Callable

import pytest

from domain.account import Account, Role
from domain.errors import DomainError, Forbidden, InvalidValue
from domain.ids import account_id_for
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
R = Role


def _account(trace: Trace, roles: set[Role] | None = None) -> Account:
    return Account.register(
        email="  Ada@Example.COM ",
        password_hash=HASH,
        roles={R.CUSTOMER} if roles is None else roles,
        **trace,
    )


def test_registering_normalises_the_email_and_derives_the_id(
    trace: Trace, collect: Collect
) -> None:
    account = _account(trace)

    assert collect(account) == ["Account.Registered"]
    assert account.email == "ada@example.com"
    assert account.id == account_id_for("ada@example.com")
    assert (account.password_hash, account.roles, account.version) == (
        HASH,
        frozenset({R.CUSTOMER}),
        1,
    )


def test_registering_the_same_address_twice_collides(trace: Trace) -> None:
    first = _account(trace)
    second = Account.register(email="ada@example.com", password_hash=HASH, **trace)

    assert second.id == first.id


def test_registered_stores_roles_as_sorted_strings(trace: Trace) -> None:
    (registered,) = _account(trace, {R.CONTRIBUTOR, R.CUSTOMER}).collect_events()

    assert isinstance(registered, Account.Registered)
    assert registered.roles == ["contributor", "customer"]
    assert registered.email == "ada@example.com"


def test_the_known_roles() -> None:
    assert {role.value for role in Role} == {
        "customer",
        "contributor",
        "admin",
        "superadmin",
        "auditor",
        "denyall",
    }


@pytest.mark.parametrize(
    ("email", "password_hash", "roles", "code"),
    [
        ("not-an-email", HASH, ["customer"], "invalid_email"),
        ("a@b", HASH, ["customer"], "invalid_email"),
        ("a b@example.com", HASH, ["customer"], "invalid_email"),
        ("ada@example.com", "hunter2", ["customer"], "invalid_password_hash"),
        ("ada@example.com", HASH, [], "roles_empty"),
        ("ada@example.com", HASH, ["root"], "invalid_choice"),
    ],
)
def test_registering_rejects_bad_input(
    trace: Trace, email: str, password_hash: str, roles: list[str], code: str
) -> None:
    with pytest.raises(InvalidValue) as raised:
        Account.register(email=email, password_hash=password_hash, roles=roles, **trace)

    assert raised.value.code == code


def test_changing_the_password_hash(trace: Trace, collect: Collect) -> None:
    account = _account(trace)
    collect(account)
    new_hash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3"

    account.change_password_hash(password_hash=new_hash, **trace)

    assert collect(account) == ["Account.PasswordChanged"]
    assert (account.password_hash, account.version) == (new_hash, 2)


def test_a_password_must_never_be_stored_in_clear(trace: Trace, rejects: Rejects) -> None:
    account = _account(trace)

    rejects(
        account,
        InvalidValue,
        "invalid_password_hash",
        lambda: account.change_password_hash(password_hash="hunter2", **trace),
    )


ROLE_CHANGES = [
    # (by_roles, current, new, expected error code or None)
    ({R.ADMIN}, {R.CUSTOMER}, {R.CUSTOMER, R.CONTRIBUTOR}, None),
    ({R.ADMIN}, {R.CUSTOMER, R.CONTRIBUTOR}, {R.CUSTOMER}, None),
    ({R.ADMIN}, {R.CUSTOMER}, {R.AUDITOR}, None),
    ({R.ADMIN}, {R.CUSTOMER}, {R.DENYALL}, None),
    ({R.SUPERADMIN}, {R.CUSTOMER}, {R.CUSTOMER, R.CONTRIBUTOR}, None),
    ({R.SUPERADMIN}, {R.CUSTOMER}, {R.ADMIN}, None),
    ({R.SUPERADMIN}, {R.ADMIN}, {R.CUSTOMER}, None),
    ({R.SUPERADMIN}, {R.CUSTOMER}, {R.SUPERADMIN}, None),
    ({R.SUPERADMIN}, {R.SUPERADMIN}, {R.CUSTOMER}, None),
    ({R.ADMIN}, {R.CUSTOMER}, {R.ADMIN}, "privileged_role_change_forbidden"),
    ({R.ADMIN}, {R.ADMIN}, {R.CUSTOMER}, "privileged_role_change_forbidden"),
    ({R.ADMIN}, {R.CUSTOMER}, {R.SUPERADMIN}, "privileged_role_change_forbidden"),
    ({R.ADMIN}, {R.SUPERADMIN}, {R.CUSTOMER}, "privileged_role_change_forbidden"),
    ({R.CUSTOMER}, {R.CUSTOMER}, {R.CONTRIBUTOR}, "roles_change_forbidden"),
    ({R.CONTRIBUTOR, R.AUDITOR}, {R.CUSTOMER}, {R.CONTRIBUTOR}, "roles_change_forbidden"),
    (set(), {R.CUSTOMER}, {R.CONTRIBUTOR}, "roles_change_forbidden"),
    ({R.AUDITOR}, {R.CUSTOMER}, {R.ADMIN}, "roles_change_forbidden"),
    # denyall on an admin or superadmin: only a superadmin blocks or unblocks them
    ({R.SUPERADMIN}, {R.ADMIN}, {R.ADMIN, R.DENYALL}, None),
    ({R.SUPERADMIN}, {R.SUPERADMIN, R.DENYALL}, {R.SUPERADMIN}, None),
    ({R.ADMIN}, {R.CONTRIBUTOR, R.DENYALL}, {R.CONTRIBUTOR}, None),
    ({R.ADMIN}, {R.ADMIN}, {R.ADMIN, R.DENYALL}, "privileged_role_change_forbidden"),
    ({R.ADMIN}, {R.SUPERADMIN}, {R.SUPERADMIN, R.DENYALL}, "privileged_role_change_forbidden"),
    ({R.ADMIN}, {R.ADMIN, R.DENYALL}, {R.ADMIN}, "privileged_role_change_forbidden"),
]


@pytest.mark.parametrize(("by_roles", "current", "new", "code"), ROLE_CHANGES)
def test_who_may_change_which_roles(
    *,
    trace: Trace,
    collect: Collect,
    rejects: Rejects,
    by_roles: set[Role],
    current: set[Role],
    new: set[Role],
    code: str | None,
) -> None:
    account = _account(trace, current)
    collect(account)

    if code is None:
        account.change_roles(new_roles=new, by_roles=by_roles, **trace)
        assert collect(account) == ["Account.RolesChanged"]
        assert (account.roles, account.version) == (frozenset(new), 2)
    else:
        rejects(
            account,
            Forbidden,
            code,
            lambda: account.change_roles(new_roles=new, by_roles=by_roles, **trace),
        )
        assert account.roles == frozenset(current)


def test_roles_can_be_given_as_strings(trace: Trace) -> None:
    account = _account(trace)

    account.change_roles(new_roles=["customer", "contributor"], by_roles=["admin"], **trace)

    assert account.roles == {R.CUSTOMER, R.CONTRIBUTOR}
    assert account.has_role(R.CONTRIBUTOR)


def test_setting_the_same_roles_records_nothing(trace: Trace, collect: Collect) -> None:
    account = _account(trace, {R.CUSTOMER})
    collect(account)

    account.change_roles(new_roles={R.CUSTOMER}, by_roles={R.ADMIN}, **trace)

    assert collect(account) == []
    assert account.version == 1


@pytest.mark.parametrize(
    ("new_roles", "code"),
    [([], "roles_empty"), (["root"], "invalid_choice")],
)
def test_new_roles_must_be_known_and_not_empty(
    trace: Trace, rejects: Rejects, new_roles: list[str], code: str
) -> None:
    account = _account(trace)

    rejects(
        account,
        InvalidValue,
        code,
        lambda: account.change_roles(new_roles=new_roles, by_roles=[R.SUPERADMIN], **trace),
    )


@pytest.mark.parametrize("by_roles", [{R.ADMIN}, {R.SUPERADMIN}])
def test_no_account_lifts_its_own_block(
    trace: Trace, rejects: Rejects, by_roles: set[Role]
) -> None:
    """An admin blocked a moment ago still holds a token with its old roles: the block is the
    account's own, so even a superadmin's token cannot lift it for itself."""
    account = _account(trace, {*by_roles, R.DENYALL})
    self_trace = {**trace, "actor": str(account.id)}

    rejects(
        account,
        Forbidden,
        "own_block_forbidden",
        lambda: account.change_roles(new_roles=by_roles, by_roles=by_roles, **self_trace),
    )
    assert R.DENYALL in account.roles


def test_the_sessions_version_is_the_version_of_the_last_role_or_password_change(
    trace: Trace,
) -> None:
    account = _account(trace)
    assert account.sessions_version == 0  # registered only: tokens minted at 0 hold

    account.change_roles(new_roles={R.CUSTOMER}, by_roles={R.ADMIN}, **trace)
    assert account.sessions_version == 0  # nothing recorded, nothing ends

    account.change_roles(new_roles={R.CUSTOMER, R.DENYALL}, by_roles={R.ADMIN}, **trace)
    assert (account.version, account.sessions_version) == (2, 2)
    account.change_password_hash(password_hash=HASH, **trace)
    assert (account.version, account.sessions_version) == (3, 3)


def test_the_sessions_version_is_the_same_when_the_account_is_replayed(trace: Trace) -> None:
    account = _account(trace)
    account.change_roles(new_roles={R.CONTRIBUTOR}, by_roles={R.ADMIN}, **trace)
    account.change_roles(new_roles={R.CUSTOMER}, by_roles={R.ADMIN}, **trace)
    replayed: Account | None = None
    for recorded in account.collect_events():
        replayed = recorded.mutate(replayed)

    assert replayed is not None
    assert (replayed.version, replayed.sessions_version) == (3, 3)
