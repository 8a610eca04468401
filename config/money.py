"""Currencies and the amounts the database can hold: the one place that says what money is valid.

Currencies are the ISO 4217 active codes, each with its minor unit (the number of decimals it is paid in:
JPY 0, USD 2, KWD 3, CLF 4). A round's `decimals` comes from this table; a caller cannot pay yen in
hundredths. Codes without a minor unit (gold, SDR, the test code XTS, "no currency" XXX) cannot be paid
and are not listed.

Amounts live in DecimalField(max_digits=18, decimal_places=4) columns. PostgreSQL keeps those exactly;
SQLite stores a DecimalField as REAL, a double, which round-trips at most 15 significant decimal digits
(DBL_DIG): 12345678901234.57 comes back as 12345678901234.6. So an amount is refused unless it has at most
15 significant digits at its currency's minor unit *and* fits the column's digits before the point —
what one supported database can hold exactly, every one can. The split never pays an owner more than
the pool, so a pool that fits means every payout and reversal of its round fits too.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

EXACT_DIGITS = 15  # significant decimal digits a double (SQLite REAL) always keeps

# ISO 4217 list one (active codes, 2025), code -> minor unit. Most currencies have 2; the others are listed
# apart so a mistake is easy to see.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT "
    "MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR "
    "SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XCD XCG YER ZAR ZMW ZWG")
CURRENCIES: dict[str, int] = {
    code: decimals for codes, decimals in ((_TWO, 2), (_ZERO, 0), (_THREE, 3), (_FOUR, 4)) for code in codes.split()}


def currency_resolve(currency, decimals=None) -> tuple[str, int]:
    """(code, decimals) of an ISO 4217 currency; `decimals`, if given, must be the currency's own."""
    code = currency.strip().upper() if isinstance(currency, str) else None
    if code not in CURRENCIES:
        raise ValidationError(f"currency {_shown(currency, quote=True)} is not an ISO 4217 currency code "
                              "(e.g. USD, EUR, JPY)")
    if decimals is not None and (isinstance(decimals, bool) or decimals != CURRENCIES[code]):
        raise ValidationError(f"{code} is paid in {CURRENCIES[code]} decimal places, "
                              f"not {_shown(decimals, quote=True)}")
    return code, CURRENCIES[code]


def minor_unit(currency: str) -> Decimal:
    """The currency's smallest amount (0.01 USD, 1 JPY, 0.001 KWD); 0.01 for a code not in the table."""
    return Decimal(1).scaleb(-CURRENCIES.get(currency, 2))


def largest_amount(decimals: int, *, max_digits: int = 18, decimal_places: int = 4) -> Decimal:
    """The largest amount in a currency of `decimals` places that every supported database holds exactly."""
    whole = min(max_digits - decimal_places, EXACT_DIGITS - decimals)
    return Decimal(10**whole) - Decimal(1).scaleb(-decimals)


def amount_parse(raw, *, decimals: int, label: str, currency: str = "", max_digits: int = 18,
                 decimal_places: int = 4) -> Decimal:
    """A non-negative Decimal from a decimal string (or Decimal / int) that is exact in the currency's
    minor unit and that the column holds exactly; else a ValidationError that names `label`."""
    if isinstance(raw, float):
        raise ValidationError(f"{label}: give the amount as a decimal string, not a float")
    try:
        amount = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{label}: {_shown(raw, quote=True)} is not a number")
    if not amount.is_finite() or amount < 0:
        raise ValidationError(f"{label}: must be a non-negative amount (zero or more)")
    largest = largest_amount(decimals, max_digits=max_digits, decimal_places=decimal_places)
    if amount > largest:  # checked first: quantizing 1E+40 would overflow the decimal context
        raise ValidationError(f"{label}: {_shown(amount)} is over the largest amount that can be stored exactly, "
                              f"{largest:,} {currency}".rstrip())
    if amount != amount.quantize(Decimal(1).scaleb(-decimals)):
        raise ValidationError(f"{label}: {_shown(amount)} has more than {decimals} decimal places; "
                              "it could not be paid exactly")
    return amount.quantize(Decimal(1).scaleb(-decimals))


def amount_format(amount, places) -> str:
    """An amount as paid, in a fixed number of decimals: `places` is the number (a round's `decimals`) or a
    currency code (its minor unit; 2 for a code not in the table). Decimal all the way: a float would
    show 16-digit pools wrong."""
    if amount is None or amount == "":
        return "—"
    unit = Decimal(1).scaleb(-places) if isinstance(places, int) else minor_unit(str(places).upper())
    return f"{Decimal(amount).quantize(unit):f}"


def _shown(value, *, limit: int = 40, quote: bool = False) -> str:
    """User input inside a message, cut short (the message is shown and stored)."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[:limit] + "…"
