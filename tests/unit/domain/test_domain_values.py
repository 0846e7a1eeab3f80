from uuid import UUID

import pytest

from domain.choices import parse_choice
from domain.errors import (
    DomainError,
    ErrorCode,
    Forbidden,
    IllegalTransition,
    InvalidValue,
    InvariantViolated,
    NotFound,
)
from domain.media import Derivative, MediaFormat, SvgOriginal
from domain.money import Money
from domain.products import Licence, ProductKind, ProductRef
from domain.text import clean_labels, clean_name

ICON_ID = UUID("00000000-0000-4000-8000-000000000001")


def test_money_keeps_minor_units_and_currency() -> None:
    price = Money(1999, "EUR")

    assert (price.amount_minor, price.currency, price.is_zero) == (1999, "EUR", False)
    assert Money.zero("USD") == Money(0, "USD")
    assert Money.zero("USD").is_zero


@pytest.mark.parametrize("amount", [-1, 1.5, True, "100"])
def test_money_rejects_amounts_that_are_not_non_negative_integers(amount: object) -> None:
    with pytest.raises(InvalidValue) as raised:
        Money(amount, "EUR")  # type: ignore[arg-type]

    assert raised.value.code == "invalid_money"


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "", "€UR", 978])
def test_money_rejects_currencies_that_are_not_three_upper_case_letters(
    currency: object,
) -> None:
    with pytest.raises(InvalidValue) as raised:
        Money(100, currency)  # type: ignore[arg-type]

    assert raised.value.code == "invalid_currency"


def test_money_adds_and_sums_within_one_currency() -> None:
    assert Money(100, "EUR") + Money(250, "EUR") == Money(350, "EUR")
    assert Money.sum([Money(1, "EUR"), Money(2, "EUR"), Money(3, "EUR")], "EUR") == Money(6, "EUR")
    assert Money.sum([], "GBP") == Money(0, "GBP")


def test_money_refuses_to_add_different_currencies() -> None:
    with pytest.raises(InvariantViolated) as raised:
        Money(100, "EUR") + Money(100, "USD")

    assert raised.value.code == "currency_mismatch"


def test_money_round_trips_through_its_data() -> None:
    assert Money(500, "GBP").to_data() == {"amount_minor": 500, "currency": "GBP"}
    assert Money.from_data({"amount_minor": 500, "currency": "GBP"}) == Money(500, "GBP")


def test_svg_original_round_trips_through_its_data() -> None:
    original = SvgOriginal("originals/ab.svg", "ab12", 2048, 24, 24, render_cost=31_000)

    assert original.to_data() == {
        "key": "originals/ab.svg",
        "content_hash": "ab12",
        "size_bytes": 2048,
        "width": 24,
        "height": 24,
        "render_cost": 31_000,
    }
    assert SvgOriginal.from_data(original.to_data()) == original
    unestimated = SvgOriginal("originals/ab.svg", "ab12", 2048, 24, 24)
    assert unestimated.to_data()["render_cost"] is None
    with pytest.raises(InvalidValue) as raised:
        SvgOriginal("originals/ab.svg", "ab12", 2048, 24, 24, render_cost=0)
    assert raised.value.code == "invalid_svg_original"


@pytest.mark.parametrize(
    ("key", "content_hash", "size_bytes", "width", "height"),
    [
        ("", "h", 1, 1, 1),
        ("k", "", 1, 1, 1),
        ("k", "h", 0, 1, 1),
        ("k", "h", 1, 0, 1),
        ("k", "h", 1, 1, -4),
        ("k", "h", 1, 1.5, 1),
    ],
)
def test_svg_original_rejects_missing_or_non_positive_fields(
    key: str, content_hash: str, size_bytes: int, width: int, height: int
) -> None:
    with pytest.raises(InvalidValue) as raised:
        SvgOriginal(key, content_hash, size_bytes, width, height)

    assert raised.value.code == "invalid_svg_original"


def test_derivative_coerces_its_kind_and_round_trips() -> None:
    derivative = Derivative("webp", 128, "d/x.webp", 900)  # type: ignore[arg-type]

    assert derivative.kind is MediaFormat.WEBP
    assert derivative.to_data() == {
        "kind": "webp",
        "size": 128,
        "key": "d/x.webp",
        "size_bytes": 900,
    }
    assert Derivative.from_data(derivative.to_data()) == derivative


@pytest.mark.parametrize(
    ("kind", "size", "key", "size_bytes"),
    [
        (MediaFormat.SVG, 64, "k", 1),
        ("gif", 64, "k", 1),
        (MediaFormat.PNG, 0, "k", 1),
        (MediaFormat.PNG, 64, "", 1),
        (MediaFormat.PNG, 64, "k", 0),
    ],
)
def test_derivative_rejects_svg_unknown_kinds_and_empty_fields(
    kind: MediaFormat, size: int, key: str, size_bytes: int
) -> None:
    with pytest.raises(InvalidValue) as raised:
        Derivative(kind, size, key, size_bytes)

    assert raised.value.code == "invalid_derivative"


def test_product_ref_coerces_its_kind() -> None:
    product = ProductRef("set", ICON_ID)  # type: ignore[arg-type]

    assert product.kind is ProductKind.SET
    assert product == ProductRef(ProductKind.SET, ICON_ID)


def test_product_ref_rejects_unknown_kinds() -> None:
    with pytest.raises(InvalidValue) as raised:
        ProductRef("bundle", ICON_ID)  # type: ignore[arg-type]

    assert raised.value.code == "invalid_choice"


def test_parse_choice_names_the_allowed_values() -> None:
    assert parse_choice(Licence, "extended") is Licence.EXTENDED
    with pytest.raises(InvalidValue) as raised:
        parse_choice(Licence, "unlimited")

    assert raised.value.code == "invalid_choice"
    assert raised.value.message == "'unlimited' is not one of: standard, extended"


def test_clean_name_collapses_whitespace() -> None:
    assert clean_name("  Weather   icons\n") == "Weather icons"


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_clean_name_rejects_blank_and_overlong_names(name: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        clean_name(name)

    assert raised.value.code == "invalid_name"


def test_clean_labels_lower_cases_trims_and_deduplicates_in_order() -> None:
    assert clean_labels([" Sun ", "cloud", "SUN", "rain  drop"]) == ["sun", "cloud", "rain drop"]


@pytest.mark.parametrize("label", ["", "  ", "x" * 65])
def test_clean_labels_rejects_blank_and_overlong_labels(label: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        clean_labels(["ok", label])

    assert raised.value.code == "invalid_label"


@pytest.mark.parametrize("error_type", [InvalidValue, InvariantViolated, NotFound, Forbidden])
def test_domain_errors_carry_a_stable_code_and_message(error_type: type[DomainError]) -> None:
    error = error_type(ErrorCode.CART_CLOSED, "the cart was checked out")

    assert isinstance(error, DomainError)
    assert (error.code, error.message, str(error)) == (
        "cart_closed",
        "the cart was checked out",
        "the cart was checked out",
    )


def test_illegal_transition_always_has_the_illegal_transition_code() -> None:
    error = IllegalTransition("Order", "paid", "pending")

    assert isinstance(error, DomainError)
    assert (error.code, error.from_state, error.to_state) == (
        "illegal_transition",
        "paid",
        "pending",
    )
    assert error.message == "Order cannot go from 'paid' to 'pending'"


def test_error_codes_are_unique_snake_case_names_of_their_members() -> None:
    values = [code.value for code in ErrorCode]

    assert len(values) == len(set(values))
    assert all(code.value == code.name.lower() for code in ErrorCode)
