"""Energy-weighted revenue split: exact cents, deterministic rounding, recorded and re-read."""

import hashlib
from decimal import Decimal
from fractions import Fraction

import pytest

from iv_pipelines.ledger.chain import EmbeddedLedger, utid_text
from iv_pipelines.ledger.revenue import (
    RevenueError,
    read_attribution,
    record_attribution,
    split_cents,
    to_cents,
)


def test_shares_add_up_and_stay_within_a_cent_of_exact():
    import random

    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 12)
        energy = {
            f"d{i}": Decimal(rng.randint(0, 10**6)) / Decimal(10 ** rng.randint(0, 4)) for i in range(n)
        }
        if sum(energy.values()) == 0:
            continue
        total = rng.randint(0, 10**7)
        shares = split_cents(total, energy)
        assert sum(shares.values()) == total
        tot_e = sum(Fraction(str(e)) for e in energy.values())
        for k, e in energy.items():
            assert abs(shares[k] - Fraction(total) * Fraction(str(e)) / tot_e) < 1


def test_rounding_is_largest_remainder_with_documented_ties():
    assert split_cents(100, {"a": 1, "b": 1, "c": 1}) == {"a": 34, "b": 33, "c": 33}
    assert split_cents(100, {"c": 1, "b": 1, "a": 1}) == {"a": 34, "b": 33, "c": 33}  # order-free
    assert split_cents(1, {"a": "0.3", "b": "0.7"}) == {"a": 0, "b": 1}
    assert split_cents(1000, {"a": 0, "b": 5}) == {"a": 0, "b": 1000}


def test_bad_inputs_are_named():
    with pytest.raises(RevenueError, match="at most 2 decimals"):
        to_cents("10.005")
    with pytest.raises(RevenueError, match="not a decimal"):
        to_cents("ten")
    with pytest.raises(RevenueError, match="energy of 'x' must be finite"):
        split_cents(100, {"x": "-1"})
    with pytest.raises(RevenueError, match="all contributed energies are 0"):
        split_cents(100, {"x": 0})
    with pytest.raises(RevenueError, match="no contributing DACs"):
        split_cents(100, {})


def test_recorded_on_the_ledger_and_rebuilt_from_receipt_events(tmp_path):
    led = EmbeddedLedger(tmp_path)
    utids = [utid_text(led.register(f"dac-{i}", hashlib.sha256(bytes([i])).digest()).utid) for i in range(3)]
    energy = {utids[0]: Decimal("1234.5"), utids[1]: Decimal("100"), utids[2]: Decimal("0.25")}
    rec = record_attribution(led, "2026-11", "999.99", energy)
    assert sum(rec["shares_cents"].values()) == 99_999
    back = read_attribution(EmbeddedLedger(tmp_path), rec["tx_hash"])
    assert back == {"total_cents": 99_999, "shares_cents": rec["shares_cents"]}
