from collections.abc import Callable
from uuid import UUID

import pytest

from domain.errors import DomainError, IllegalTransition, InvalidValue
from domain.ids import transaction_id_for
from domain.money import Money
from domain.traced_aggregate import Trace, TracedAggregate
from domain.transaction import Mismatch, Transaction, TransactionStatus

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]
T = TransactionStatus

ORDER_ID = UUID("00000000-0000-4000-8000-0000000000aa")
AMOUNT = Money(5200, "EUR")


def _transaction(trace: Trace, provider_reference: str | None = None) -> Transaction:
    return Transaction.start(
        order_id=ORDER_ID,
        attempt=2,
        amount=AMOUNT,
        provider="stripe",
        provider_reference=provider_reference,
        **trace,
    )


COMMANDS: dict[TransactionStatus, Callable[[Transaction, Trace], None]] = {
    T.SUCCEEDED: lambda tx, trace: tx.succeed(provider_reference="pi_1", captured=AMOUNT, **trace),
    T.FAILED: lambda tx, trace: tx.fail(provider_reference="pi_1", reason="declined", **trace),
    T.REFUNDED: lambda tx, trace: tx.refund(reason="customer request", **trace),
    T.DISPUTED: lambda tx, trace: tx.dispute(reason="fraudulent", **trace),
}
EVENTS = {
    T.SUCCEEDED: "Transaction.Succeeded",
    T.FAILED: "Transaction.Failed",
    T.REFUNDED: "Transaction.Refunded",
    T.DISPUTED: "Transaction.Disputed",
}
PATHS = {
    T.CREATED: [],
    T.SUCCEEDED: [T.SUCCEEDED],
    T.FAILED: [T.FAILED],
    T.REFUNDED: [T.SUCCEEDED, T.REFUNDED],
    T.DISPUTED: [T.SUCCEEDED, T.DISPUTED],
}
EXPECTED_TRANSITIONS = {
    (T.CREATED, T.SUCCEEDED),
    (T.CREATED, T.FAILED),
    (T.FAILED, T.SUCCEEDED),  # a late capture on the failed attempt's intent
    (T.SUCCEEDED, T.REFUNDED),
    (T.SUCCEEDED, T.DISPUTED),
}


def test_starting_records_the_attempt_with_a_deterministic_id(
    trace: Trace, collect: Collect
) -> None:
    transaction = _transaction(trace)

    assert collect(transaction) == ["Transaction.Started"]
    assert transaction.id == transaction_id_for(ORDER_ID, 2)
    assert (transaction.order_id, transaction.attempt, transaction.amount) == (ORDER_ID, 2, AMOUNT)
    assert (transaction.provider, transaction.provider_reference) == ("stripe", None)
    assert (transaction.status, transaction.version) == (T.CREATED, 1)
    assert (transaction.captured, transaction.has_mismatch, transaction.failure_reason) == (
        None,
        False,
        None,
    )


@pytest.mark.parametrize(
    ("attempt", "provider", "code"),
    [(0, "stripe", "invalid_attempt"), (1, " ", "invalid_provider")],
)
def test_starting_needs_a_positive_attempt_and_a_provider(
    trace: Trace, attempt: int, provider: str, code: str
) -> None:
    with pytest.raises(InvalidValue) as raised:
        Transaction.start(
            order_id=ORDER_ID, attempt=attempt, amount=AMOUNT, provider=provider, **trace
        )

    assert raised.value.code == code


@pytest.mark.parametrize("target", list(COMMANDS))
@pytest.mark.parametrize("current", list(TransactionStatus))
def test_transaction_transition_table(
    trace: Trace,
    collect: Collect,
    rejects: Rejects,
    current: TransactionStatus,
    target: TransactionStatus,
) -> None:
    transaction = _transaction(trace)
    for step in PATHS[current]:
        COMMANDS[step](transaction, trace)
    collect(transaction)
    version = transaction.version

    if (current, target) in EXPECTED_TRANSITIONS:
        COMMANDS[target](transaction, trace)
        assert collect(transaction) == [EVENTS[target]]
        assert (transaction.status, transaction.version) == (target, version + 1)
    else:
        rejects(
            transaction,
            IllegalTransition,
            "illegal_transition",
            lambda: COMMANDS[target](transaction, trace),
        )
        assert transaction.status is current


def test_a_matching_success_has_no_mismatch(trace: Trace, collect: Collect) -> None:
    transaction = _transaction(trace, provider_reference="pi_1")
    collect(transaction)

    transaction.succeed(provider_reference="pi_1", captured=AMOUNT, **trace)

    (succeeded,) = transaction.collect_events()
    assert isinstance(succeeded, Transaction.Succeeded)
    assert (succeeded.provider_reference, succeeded.captured, succeeded.mismatches) == (
        "pi_1",
        {"amount_minor": 5200, "currency": "EUR"},
        [],
    )
    assert (transaction.captured, transaction.has_mismatch) == (AMOUNT, False)


@pytest.mark.parametrize(
    ("started_reference", "reported_reference", "captured", "mismatches"),
    [
        (None, "pi_1", Money(5000, "EUR"), {Mismatch.AMOUNT}),
        (None, "pi_1", Money(5200, "USD"), {Mismatch.CURRENCY}),
        ("pi_1", "pi_2", AMOUNT, {Mismatch.PROVIDER_REFERENCE}),
        ("pi_1", "pi_2", Money(1, "EUR"), {Mismatch.AMOUNT, Mismatch.PROVIDER_REFERENCE}),
    ],
    ids=["amount", "currency", "reference", "both"],
)
def test_a_success_that_differs_from_the_expectation_is_flagged(
    trace: Trace,
    started_reference: str | None,
    reported_reference: str,
    captured: Money,
    mismatches: set[Mismatch],
) -> None:
    transaction = _transaction(trace, provider_reference=started_reference)

    transaction.succeed(provider_reference=reported_reference, captured=captured, **trace)

    assert transaction.status is T.SUCCEEDED
    assert transaction.has_mismatch is True
    assert transaction.mismatches == mismatches
    assert (transaction.captured, transaction.provider_reference) == (captured, reported_reference)


def test_a_failure_keeps_the_reason_and_the_known_reference(trace: Trace, collect: Collect) -> None:
    transaction = _transaction(trace, provider_reference="pi_1")
    collect(transaction)

    transaction.fail(provider_reference=None, reason="card_declined", **trace)

    assert collect(transaction) == ["Transaction.Failed"]
    assert (transaction.failure_reason, transaction.provider_reference) == (
        "card_declined",
        "pi_1",
    )
