"""Turn owner values into exact currency amounts (docs/design.md §2, "Payouts").

share_i = max(φ_i, 0) / Σ_j max(φ_j, 0) of a pool P, where φ is what the policy pays by
(`allocation.payout_values`): the Shapley value under `clip`, the split-proof margin share under
`margin_share`. Amounts are rounded to the currency's minor unit (10^−decimals) by the
largest-remainder (Hamilton) method: every owner first gets the floor of its exact quota in
units, then the units left over go one by one to the largest fractional remainders (ties:
larger value, then lower index), so Σ amounts == P exactly and the result is deterministic.

Money is never float: the pool is a Decimal counted as an integer number of units, and
each quota U·p_i/Σp is computed as an exact Fraction of the (exactly representable)
float values, so no rounding happens anywhere before the final floor. This is the one
function that turns values into amounts (STYLE.md rule 6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import numpy as np

POLICIES: tuple[str, ...] = ("clip", "margin_share")  # both turn values into money alike
NOTHING_PAID = "no owner has positive value: nothing is paid"


@dataclass(frozen=True)
class PayoutSplit:
    """One pool split among owners, in the order of the values given."""

    amounts: list[Decimal]  # per owner, multiples of the minor unit, summing to `paid`
    shares: list[float]  # per owner, the unrounded fraction of the pool (sums to 1 or 0)
    paid: Decimal  # Σ amounts: the whole pool, or 0 when nobody is paid
    reason: str | None = None  # why less than the pool is paid, for the admin to read


def split_pool(
    values: Sequence[float] | np.ndarray,
    pool: Decimal | int | str,
    *,
    policy: str = "clip",
    decimals: int = 2,
) -> PayoutSplit:
    """Split `pool` among owners by their values `values` under `policy`."""
    if policy not in POLICIES:
        raise ValueError(f"unknown payout policy {policy!r}; valid policies are {', '.join(POLICIES)}")
    phi = _check_values(values)
    units = _pool_units(pool, decimals=decimals)
    positive = [Fraction(float(x)) if x > 0 else Fraction(0) for x in phi]
    total = sum(positive, Fraction(0))
    if total == 0:
        zero = _to_amount(0, decimals)
        return PayoutSplit([zero] * len(phi), [0.0] * len(phi), zero, NOTHING_PAID)
    counts = _largest_remainder(positive, total, units=units, tie_values=phi)
    amounts = [_to_amount(c, decimals) for c in counts]
    shares = [float(p / total) for p in positive]
    return PayoutSplit(amounts, shares, _to_amount(sum(counts), decimals), None)


def _check_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    phi = np.asarray(values, dtype=np.float64)
    if phi.ndim != 1:
        raise ValueError(f"values must be a flat list with one value per owner, got shape {phi.shape}")
    if not np.all(np.isfinite(phi)):
        bad = int(np.flatnonzero(~np.isfinite(phi))[0])
        raise ValueError(f"values must be finite numbers; owner {bad} has {phi[bad]}")
    return phi


def _pool_units(pool: Decimal | int | str, *, decimals: int) -> int:
    """The pool as a whole number of minor units, refusing anything that is not money."""
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals must be a non-negative integer, got {decimals!r}")
    if isinstance(pool, (float, np.floating)):
        raise TypeError("pool must be a Decimal, int or str, never a float: money is exact")
    if isinstance(pool, bool) or not isinstance(pool, (Decimal, int, str)):
        raise TypeError(f"pool must be a Decimal, int or str, got {type(pool).__name__}")
    try:
        amount = Decimal(pool.strip() if isinstance(pool, str) else pool)
    except InvalidOperation:
        raise ValueError(f"pool {pool!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"pool must be a finite amount, got {amount}")
    if amount < 0:
        raise ValueError(f"pool must not be negative, got {amount}")
    # Fraction, not Decimal arithmetic: exact at any size, no 28-digit context rounding.
    units = Fraction(amount) * 10**decimals
    if units.denominator != 1:
        raise ValueError(
            f"pool {amount} has more than {decimals} decimal places; round it to the "
            f"currency's minor unit first"
        )
    return units.numerator


def _largest_remainder(
    positive: list[Fraction], total: Fraction, *, units: int, tie_values: np.ndarray
) -> list[int]:
    """Whole units per owner summing to `units`, Hamilton's method on exact quotas."""
    quotas = [units * p / total for p in positive]
    counts = [math.floor(q) for q in quotas]
    leftover = units - sum(counts)
    # Remainders sum to `leftover` and each is < 1, so every leftover unit lands on an
    # owner with a positive remainder; zero-value owners are never reached.
    order = sorted(
        range(len(quotas)),
        key=lambda i: (-(quotas[i] - counts[i]), -tie_values[i], i),
    )
    for i in order[:leftover]:
        counts[i] += 1
    return counts


def _to_amount(units: int, decimals: int) -> Decimal:
    """An int number of minor units as a Decimal with exactly `decimals` places."""
    # Built from digits, so even a pool beyond the 28-digit context stays exact.
    return Decimal((0, tuple(int(d) for d in str(units)), -decimals))
