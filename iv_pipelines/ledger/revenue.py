"""Revenue attribution (seed §5.3): split a revenue amount across the DACs that earned it, in
proportion to the energy each contributed, in exact integer cents.

Rounding (largest remainder / Hamilton): each DAC first gets floor(total x E_i / sum E) cents
computed exactly with integers; the cents left over (fewer than the number of DACs) go one
each to the largest fractional remainders, ties broken by UTID (ascending) so the split is
deterministic. The shares always add up to the total, and every share is within one cent of
its exact proportional value. Energies are Decimals (joules) — never floats.

The split is recorded on the ledger (`attribute_revenue`: the contract rejects shares that do
not add up to the total or name unknown UTIDs) and `read_attribution` rebuilds it from the
transaction's receipt events alone.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from pathlib import Path


class RevenueError(ValueError):
    """The inputs of a revenue split are unusable; the message names the field."""


def to_cents(amount: str | Decimal) -> int:
    try:
        d = Decimal(str(amount))
    except InvalidOperation:
        raise RevenueError(f"amount {amount!r} is not a decimal number") from None
    if d < 0 or d != d.quantize(Decimal("0.01")):
        raise RevenueError(f"amount {amount!r} must be non-negative with at most 2 decimals")
    return int(d * 100)


def split_cents(total_cents: int, energy_j: dict[str, Decimal | str | int]) -> dict[str, int]:
    if not energy_j:
        raise RevenueError("no contributing DACs: nothing to split the revenue across")
    weights = {}
    for key, e in energy_j.items():
        try:
            d = Decimal(str(e))
        except InvalidOperation:
            raise RevenueError(f"energy of {key!r} is not a number: {e!r}") from None
        if not d.is_finite() or d < 0:
            raise RevenueError(f"energy of {key!r} must be finite and >= 0, got {e!r}")
        weights[key] = d
    total_e = sum(weights.values())
    if total_e == 0:
        raise RevenueError("all contributed energies are 0: no basis for a split")
    # scale to integers exactly: Decimal -> integer numerators over a common power of ten
    exp = max(0, -min(w.as_tuple().exponent for w in weights.values()))
    ints = {k: int(w.scaleb(exp)) for k, w in weights.items()}
    denom = sum(ints.values())
    shares, remainders = {}, []
    for k, w in ints.items():
        q, r = divmod(total_cents * w, denom)
        shares[k] = q
        remainders.append((-r, k))
    left = total_cents - sum(shares.values())
    for _, k in sorted(remainders)[:left]:
        shares[k] += 1
    return shares


def period_id(period: str) -> bytes:
    """bytes32 id of a reporting period such as '2026-11'."""
    return hashlib.sha256(b"iv-period-v1\x00" + period.encode()).digest()


def record_attribution(
    ledger, period: str, amount: str | Decimal, energy_by_utid: dict[str, Decimal]
) -> dict:
    total = to_cents(amount)
    shares = split_cents(total, energy_by_utid)
    utids = sorted(shares)
    tx, events = ledger.attribute_revenue(
        period_id(period),
        [bytes.fromhex(u.removeprefix("utid:")) for u in utids],
        [shares[u] for u in utids],
        total,
    )
    return {
        "period": period,
        "total_cents": total,
        "shares_cents": shares,
        "tx_hash": tx,
        "events": len(events),
    }


def read_attribution(ledger, tx_hash: str) -> dict:
    events = ledger.receipt_events(tx_hash, "RevenueAttributed")
    if not events:
        raise RevenueError(f"transaction {tx_hash} recorded no revenue attribution")
    return {
        "total_cents": int(events[0]["total_cents"]),
        "shares_cents": {"utid:" + bytes(e["utid"]).hex(): int(e["amount_cents"]) for e in events},
    }


def attribute_once(chain, record_path: Path, period: str, amount, energy: dict) -> tuple[str, bool]:
    """Record `amount` for `period` split by `energy` (UTID -> joules) on the ledger, once:
    when `record_path` says the same amount and energy were already recorded, its tx hash is
    returned and nothing is sent. Returns (tx_hash, recorded_now)."""
    import json

    from iv_pipelines.paths import atomic_write_text

    record_path = Path(record_path)
    as_text = {k: str(v) for k, v in energy.items()}
    prev = json.loads(record_path.read_text()) if record_path.exists() else None
    if prev and prev["amount"] == amount and prev["energy"] == as_text:
        return prev["tx_hash"], False
    tx = record_attribution(chain, period, amount, energy)["tx_hash"]
    atomic_write_text(record_path, json.dumps({"amount": amount, "energy": as_text, "tx_hash": tx}) + "\n")
    return tx, True
