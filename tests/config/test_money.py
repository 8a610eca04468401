"""config/money.py: ISO 4217 currencies with their minor units, and the amounts every database holds exactly."""
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from config import money
from marketplace.templatetags.charts import amount as amount_filter


@pytest.mark.parametrize("code, decimals", [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3),
                                            ("BHD", 3), ("CLF", 4), ("usd", 2), (" jpy ", 0)])
def test_a_currency_brings_its_minor_unit(code, decimals):
    assert money.currency_resolve(code) == (code.strip().upper(), decimals)
    assert money.currency_resolve(code, decimals) == (code.strip().upper(), decimals)


@pytest.mark.parametrize("code", ["<b>", "US", "USDX", "XXX", "XAU", "ABC", "", None, 840])
def test_unknown_or_unpayable_codes_are_refused(code):
    with pytest.raises(ValidationError, match="not an ISO 4217 currency code"):
        money.currency_resolve(code)


@pytest.mark.parametrize("code, decimals", [("JPY", 2), ("USD", 0), ("KWD", 2), ("USD", True)])
def test_decimals_that_contradict_the_currency_are_refused(code, decimals):
    with pytest.raises(ValidationError, match=f"{code} is paid in {money.CURRENCIES[code]} decimal places"):
        money.currency_resolve(code, decimals)


def test_the_table_is_three_letter_codes_with_plausible_units():
    assert len(money.CURRENCIES) > 150
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in money.CURRENCIES)
    assert set(money.CURRENCIES.values()) == {0, 2, 3, 4}


@pytest.mark.parametrize("decimals, largest", [(2, "9999999999999.99"), (0, "99999999999999"),
                                               (3, "999999999999.999"), (4, "99999999999.9999")])
def test_the_largest_amount_has_fifteen_significant_digits_and_fits_the_column(decimals, largest):
    assert money.largest_amount(decimals) == Decimal(largest)
    # a double (SQLite REAL) gives it back digit for digit
    assert Decimal(repr(float(largest))) == Decimal(largest)


@pytest.mark.parametrize("raw, decimals, says", [
    ("99999999999999.99", 2, "over the largest amount that can be stored exactly, 9,999,999,999,999.99 USD"),
    ("12345678901234.57", 2, "over the largest amount"),
    ("1E+40", 2, "over the largest amount"),
    ("100000000000000", 0, "over the largest amount"),
    ("1000.5", 0, "more than 0 decimal places"),
    ("1.0001", 3, "more than 3 decimal places"),
    (1.5, 2, "not a float"),
    ("-1", 2, "non-negative"),
    ("NaN", 2, "non-negative"),
    ("Infinity", 2, "non-negative"),
    ("ten", 2, "not a number"),
])
def test_amounts_that_cannot_be_stored_or_paid_exactly_are_refused(raw, decimals, says):
    with pytest.raises(ValidationError, match=says.replace("+", r"\+")):
        money.amount_parse(raw, decimals=decimals, label="pool", currency="USD")


def test_amounts_at_the_limit_are_kept_exactly():
    assert money.amount_parse("9999999999999.99", decimals=2, label="pool") == Decimal("9999999999999.99")
    assert money.amount_parse("1000", decimals=0, label="pool") == Decimal(1000)
    assert money.amount_parse(Decimal("0.125"), decimals=3, label="pool") == Decimal("0.125")


@pytest.mark.parametrize("value, places, shown", [
    (Decimal("1000.0000"), 0, "1000"), (Decimal("1000.0000"), "JPY", "1000"), (Decimal("12.5"), 2, "12.50"),
    (Decimal("0.1250"), "KWD", "0.125"), (Decimal("9999999999999.99"), "USD", "9999999999999.99"),
    (None, 2, "—")])
def test_amounts_are_shown_in_the_minor_unit_without_float_rounding(value, places, shown):
    assert money.amount_format(value, places) == shown == amount_filter(value, places)
