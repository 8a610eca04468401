"""Pool splitting: exact sums, the largest-remainder rule, and refusing non-money."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from valuation.engine.payouts import NOTHING_PAID, POLICIES, PayoutSplit, split_pool


def D(text: str) -> Decimal:
    return Decimal(text)


def test_three_equal_owners_share_100() -> None:
    split = split_pool([0.2, 0.2, 0.2], D("100.00"))
    assert split.amounts == [D("33.34"), D("33.33"), D("33.33")]
    assert split.paid == D("100.00") and split.reason is None
    assert split.shares == pytest.approx([1 / 3] * 3)


def test_one_cent_among_seven_equal_owners_goes_to_the_first() -> None:
    for _ in range(3):  # deterministic, not just once
        split = split_pool([1.5] * 7, D("0.01"))
        assert split.amounts == [D("0.01")] + [D("0.00")] * 6
        assert split.paid == D("0.01")


def test_proportional_when_it_divides_exactly() -> None:
    split = split_pool([1.0, 3.0, 4.0], D("80.00"))
    assert split.amounts == [D("10.00"), D("30.00"), D("40.00")]


def test_leftover_goes_to_the_largest_remainders() -> None:
    # Quotas in cents: 1/6·1000 = 166.67, 2/6·1000 = 333.33, 3/6·1000 = 500 ⇒ the leftover
    # cent goes to owner 0 (remainder .67), not to the larger owner 1 (remainder .33).
    split = split_pool([1.0, 2.0, 3.0], D("10.00"))
    assert split.amounts == [D("1.67"), D("3.33"), D("5.00")]


def test_equal_remainders_prefer_larger_value_then_lower_index() -> None:
    # Quotas 0.5/2.5/0.5/2.5 cents, every remainder ½: the two leftover cents go to
    # the owners of value 5; among equal values the lower index wins.
    split = split_pool([1.0, 5.0, 1.0, 5.0], D("0.06"))
    assert split.amounts == [D("0.00"), D("0.03"), D("0.00"), D("0.03")]
    split = split_pool([1.0, 1.0, 1.0, 1.0], D("0.02"))
    assert split.amounts == [D("0.01"), D("0.01"), D("0.00"), D("0.00")]


def test_negative_and_zero_values_are_clipped() -> None:
    split = split_pool([-0.5, 0.25, 0.0, 0.75], D("1000"))
    assert split.amounts == [D("0.00"), D("250.00"), D("0.00"), D("750.00")]
    assert split.shares == [0.0, 0.25, 0.0, 0.75]


def test_one_positive_owner_gets_everything() -> None:
    split = split_pool([-3.0, 1e-12, -1.0], D("12345.67"))
    assert split.amounts == [D("0.00"), D("12345.67"), D("0.00")]
    assert split.paid == D("12345.67")


@pytest.mark.parametrize("values", [[-1.0, -0.1, 0.0], [0.0, 0.0], [-2.0], []])
def test_nothing_is_paid_without_a_positive_value(values: list[float]) -> None:
    split = split_pool(values, D("500.00"))
    assert split.amounts == [D("0.00")] * len(values)
    assert split.paid == 0 and split.reason == NOTHING_PAID
    assert "nothing is paid" in split.reason


def test_large_pool_stays_exact_beyond_decimal_context() -> None:
    pool = D("100000000000000000000000000000000.00")  # 35 digits, past the 28-digit context
    split = split_pool([1.0, 1.0, 1.0], pool)
    assert split.paid == pool
    with localcontext() as ctx:
        ctx.prec = 60  # the test's own arithmetic must not round either
        assert sum(split.amounts) == pool
        assert split.amounts[0] == D("33333333333333333333333333333333.34")
        assert split.amounts[1] == split.amounts[2] == D("33333333333333333333333333333333.33")


@pytest.mark.parametrize(
    ("decimals", "pool", "expected"),
    [
        (0, 100, [D("34"), D("33"), D("33")]),
        (3, "1.000", [D("0.334"), D("0.333"), D("0.333")]),
        (3, D("0.002"), [D("0.001"), D("0.001"), D("0.000")]),
    ],
)
def test_other_minor_units(decimals: int, pool: object, expected: list[Decimal]) -> None:
    split = split_pool([2.0, 2.0, 2.0], pool, decimals=decimals)
    assert split.amounts == expected
    assert all(a.as_tuple().exponent == -decimals for a in split.amounts)


def test_int_and_str_pools_are_money() -> None:
    assert split_pool([1.0, 1.0], 3).amounts == [D("1.50"), D("1.50")]
    assert split_pool([1.0, 1.0], " 0.03 ").amounts == [D("0.02"), D("0.01")]


@pytest.mark.parametrize("pool", [100.0, 0.1])
def test_float_pool_is_refused(pool: float) -> None:
    with pytest.raises(TypeError, match="never a float"):
        split_pool([1.0], pool)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "pool", "kwargs", "message"),
    [
        ([1.0], D("-1"), {}, "must not be negative"),
        ([1.0], D("NaN"), {}, "finite"),
        ([1.0], "ten", {}, "not a number"),
        ([1.0], D("1.005"), {}, "more than 2 decimal places"),
        ([1.0, float("nan")], D("1"), {}, "owner 1"),
        ([float("inf")], D("1"), {}, "finite"),
        ([1.0], D("1"), {"policy": "proportional"}, "clip"),
        ([1.0], D("1"), {"decimals": -1}, "decimals"),
    ],
)
def test_bad_input_is_refused(values: list[float], pool: object, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_pool(values, pool, **kwargs)  # type: ignore[arg-type]


def test_result_is_frozen_and_policies_listed() -> None:
    split = split_pool([1.0], D("1.00"))
    assert isinstance(split, PayoutSplit) and POLICIES == ("clip", "margin_share")
    with pytest.raises(AttributeError):
        split.paid = D("0")  # type: ignore[misc]


value_lists = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, 1e-300, 5e-324, 1.0, 1.0]),  # subnormals, zeros and ties too
    min_size=1,
    max_size=25,
)


@given(values=value_lists, cents=st.integers(min_value=0, max_value=10**15), decimals=st.integers(0, 4))
def test_split_properties(values: list[float], cents: int, decimals: int) -> None:
    pool = Decimal(cents).scaleb(-decimals)
    split = split_pool(values, pool, decimals=decimals)
    unit = Decimal(1).scaleb(-decimals)
    assert all(a >= 0 and a % unit == 0 for a in split.amounts)
    if any(x > 0 for x in values):
        assert sum(split.amounts) == pool == split.paid and split.reason is None
    else:
        assert split.paid == 0 and split.reason == NOTHING_PAID
    for x, a in zip(values, split.amounts):
        if x <= 0:
            assert a == 0
        for y, b in zip(values, split.amounts):
            if x > y:
                assert a >= b  # a higher value never gets less
