"""Exact money and hours (`sync.model`): the helpers every amount passes through (I5)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.model import (
    HOUR_UNIT,
    OPEN_REFILL_STATUSES,
    EntryStatus,
    PostingKind,
    RefillStatus,
    UnknownCurrency,
    format_amount,
    from_minor,
    is_known_currency,
    minor_digits,
    parse_decimal,
    quantize_money,
    to_minor,
)


@pytest.mark.parametrize(
    ("unit", "digits"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), (HOUR_UNIT, 0)],
)
def test_minor_digits_follow_iso_4217(unit: str, digits: int) -> None:
    assert minor_digits(unit) == digits


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("0.125", "EUR", "0.13"),  # half goes up, not to even
        ("0.135", "EUR", "0.14"),
        ("0.1249", "EUR", "0.12"),
        ("-0.125", "EUR", "-0.13"),  # half-up means away from zero
        ("142.5", "JPY", "143"),
        ("141.5", "JPY", "142"),
        ("142.49", "JPY", "142"),
        ("1.2345", "KWD", "1.235"),
        ("1.2344", "KWD", "1.234"),
        ("7", "EUR", "7.00"),
    ],
)
def test_quantize_money_rounds_half_up_to_the_minor_unit(
    value: str, currency: str, expected: str
) -> None:
    result = quantize_money(Decimal(value), currency)
    assert str(result) == expected


@pytest.mark.parametrize(
    ("value", "unit", "minor"),
    [
        ("1234.50", "EUR", 123450),
        ("0.005", "EUR", 1),
        ("0.004", "EUR", 0),
        ("142.5", "JPY", 143),
        ("1.2345", "KWD", 1235),
        ("-12.34", "EUR", -1234),
        ("1.5", HOUR_UNIT, 5400),
        ("0.01", HOUR_UNIT, 36),
        ("0.0001", HOUR_UNIT, 0),  # 0.36 s
        ("0.00014", HOUR_UNIT, 1),  # 0.504 s, half up
    ],
)
def test_to_minor(value: str, unit: str, minor: int) -> None:
    assert to_minor(Decimal(value), unit) == minor


@pytest.mark.parametrize(
    ("minor", "unit", "shown"),
    [
        (123450, "EUR", "1234.50"),
        (0, "EUR", "0.00"),
        (-5, "EUR", "-0.05"),
        (143, "JPY", "143"),
        (1235, "KWD", "1.235"),
        (5400, HOUR_UNIT, "1.50"),
        (36, HOUR_UNIT, "0.01"),
        (0, HOUR_UNIT, "0.00"),
        (-900, HOUR_UNIT, "-0.25"),
        (37, HOUR_UNIT, "0.010278"),  # not a multiple of 36 s: six decimals
        (1, HOUR_UNIT, "0.000278"),
        (4501, HOUR_UNIT, "1.250278"),
    ],
)
def test_from_minor_and_format_amount(minor: int, unit: str, shown: str) -> None:
    assert format_amount(minor, unit) == shown
    assert str(from_minor(minor, unit)) == shown


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    unit=st.sampled_from(["EUR", "JPY", "KWD", HOUR_UNIT]),
)
def test_minor_units_round_trip(minor: int, unit: str) -> None:
    assert to_minor(from_minor(minor, unit), unit) == minor


@given(seconds=st.integers(min_value=-(10**9), max_value=10**9))
def test_hours_show_two_decimals_exactly_when_a_multiple_of_36_seconds(seconds: int) -> None:
    hours = from_minor(seconds, HOUR_UNIT)
    decimals = -hours.as_tuple().exponent  # type: ignore[operator]
    assert decimals == (2 if seconds % 36 == 0 else 6)
    if seconds % 36 == 0:
        assert hours * 3600 == seconds


@given(
    value=st.decimals(min_value=-(10**9), max_value=10**9, places=6),
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_quantized_money_is_a_fixed_point_of_the_round_trip(value: Decimal, currency: str) -> None:
    money = quantize_money(value, currency)
    assert abs(money - value) <= Decimal(1).scaleb(-minor_digits(currency)) / 2
    assert from_minor(to_minor(money, currency), currency) == money
    assert to_minor(value, currency) == to_minor(money, currency)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("95.00", "95.00"), (" 0.10 ", "0.10"), (3, "3"), (Decimal("1.5"), "1.5"), ("-2", "-2")],
)
def test_parse_decimal_keeps_the_written_digits(text: str | int | Decimal, expected: str) -> None:
    assert str(parse_decimal(text)) == expected


@pytest.mark.parametrize("bad", [0.1, 95.0, True])
def test_parse_decimal_refuses_floats_and_booleans(bad: object) -> None:
    with pytest.raises(ValueError, match="not a floating-point number"):
        parse_decimal(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "", "1,5", "NaN", "Infinity", "-inf"])
def test_parse_decimal_refuses_non_numbers(bad: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_decimal(bad)


@pytest.mark.parametrize("code", ["EURO", "eur", "XXX", "", "USDD"])
def test_unknown_currency_is_an_error_everywhere_money_is_rounded(code: str) -> None:
    assert not is_known_currency(code)
    with pytest.raises(UnknownCurrency, match="ISO 4217"):
        minor_digits(code)
    with pytest.raises(UnknownCurrency):
        quantize_money(Decimal("1"), code)
    with pytest.raises(UnknownCurrency):
        to_minor(Decimal("1"), code)
    with pytest.raises(UnknownCurrency):
        from_minor(100, code)
    assert issubclass(UnknownCurrency, ValueError)


@pytest.mark.parametrize("code", ["EUR", "JPY", "KWD", "CLF"])
def test_known_currencies(code: str) -> None:
    assert is_known_currency(code)


def test_the_vocabularies_are_enums_whose_values_are_what_the_ledger_stores() -> None:
    assert [s.value for s in EntryStatus] == [
        "deducted", "pending", "excluded", "unpriced", "unrouted", "running", "invalid",
        "deleted",
    ]  # fmt: skip
    assert [k.value for k in PostingKind] == [
        "opening", "entry", "topup", "refill_credit", "reversal"
    ]  # fmt: skip
    assert [s.value for s in RefillStatus] == ["intent", "issued", "paid", "void", "failed"]
    assert {"intent", "issued", "failed"} == OPEN_REFILL_STATUSES
    assert f"{RefillStatus.PAID}" == "paid" and RefillStatus("void") is RefillStatus.VOID
