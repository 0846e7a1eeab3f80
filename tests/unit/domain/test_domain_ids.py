from uuid import UUID

from domain.ids import (
    account_id_for,
    library_id_for,
    normalise_email,
    order_id_for_cart,
    transaction_id_for,
)

ORDER_ID = UUID("00000000-0000-4000-8000-0000000000aa")
CART_ID = UUID("00000000-0000-4000-8000-0000000000cc")


def test_email_normalisation_trims_and_lower_cases() -> None:
    assert normalise_email("  Ada@Example.COM ") == "ada@example.com"


def test_account_ids_are_pinned_and_ignore_email_case() -> None:
    assert account_id_for("ada@example.com") == UUID("b0e3a6ee-3728-50e6-a862-0f4e36ab8553")
    assert account_id_for(" ADA@example.com") == account_id_for("ada@example.com")
    assert account_id_for("bob@example.com") != account_id_for("ada@example.com")


def test_library_ids_are_pinned_per_customer() -> None:
    assert library_id_for("customer-1") == UUID("8fff0a18-7ede-5460-a830-7401ea22fedb")
    assert library_id_for("customer-2") != library_id_for("customer-1")


def test_order_ids_are_pinned_per_cart() -> None:
    assert order_id_for_cart(CART_ID) == UUID("bd080623-4427-5dbe-8390-7537f9eed991")


def test_transaction_ids_are_pinned_per_order_and_attempt() -> None:
    assert transaction_id_for(ORDER_ID, 1) == UUID("25641d7c-1146-5ca9-9c6b-ca3140b7cf4d")
    assert transaction_id_for(ORDER_ID, 2) != transaction_id_for(ORDER_ID, 1)
    assert transaction_id_for(ORDER_ID, 1) == transaction_id_for(ORDER_ID, 1)
