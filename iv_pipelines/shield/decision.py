"""The AI Shield decision engine: approve or reject a package, with reasons.

Score = sum of weighted criteria, each in [0, 1]:
    validation 0.30  the calibrated validation score of the DAC's hypothesis (discovery gate)
    adapter    0.30  held-out accuracy of the shipped model at its decision, on the evidence
                     that decides (`validated_on`: the client's device, or the simulated room)
    provenance 0.20  1 if the lineage bundle and the package attestation verify, else 0
    policy     0.20  fraction of the shield policies passed
Approve iff every hard gate holds and the score >= APPROVE_AT. Hard gates: the hypothesis
passed its gate, the adapter gate passed (not significantly worse than the base, measured
constraints met), provenance verifies, no policy finding, every client constraint the request
states is met by a measured value (accuracy, fall false-alarm rate, latency, memory), and no
accuracy constraint is `unverified` (simulated evidence only, and the request does not accept
simulation evidence). The weights rank packages that pass the gates (and are
shown in the UI); the gates alone decide rejection, so a high score never hides a failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

WEIGHTS = {"validation": 0.30, "adapter": 0.30, "provenance": 0.20, "policy": 0.20}
APPROVE_AT = 0.80


@dataclass
class Evidence:
    validation_score: float
    validation_passed: bool
    adapter_accuracy: float
    adapter_beats_base: bool
    provenance_ok: bool
    policies_passed: dict[str, bool]
    # (constraint name, measured, limit, "min" | "max"[, n windows]) for each constraint the
    # client set; with n, a rate is judged with its 95 % interval (gate.constraint_status)
    constraints: list[tuple] = field(default_factory=list)
    policy_findings: list[str] = field(default_factory=list)
    validated_on: str = "simulation_only"
    unverified: list[str] = field(default_factory=list)  # constraints without usable evidence


@dataclass
class Decision:
    approved: bool
    score: float
    components: dict[str, float]
    reasons: list[str]

    def to_json(self) -> dict:
        return asdict(self) | {"weights": WEIGHTS, "approve_at": APPROVE_AT}


def decide(ev: Evidence) -> Decision:
    policy_frac = sum(ev.policies_passed.values()) / max(len(ev.policies_passed), 1)
    comp = {
        "validation": max(0.0, min(1.0, ev.validation_score)),
        "adapter": max(0.0, min(1.0, ev.adapter_accuracy)),
        "provenance": 1.0 if ev.provenance_ok else 0.0,
        "policy": policy_frac,
    }
    score = round(sum(WEIGHTS[k] * v for k, v in comp.items()), 4)
    reasons = []
    if not ev.validation_passed:
        reasons.append(f"REJECT: hypothesis validation score {ev.validation_score:.3f} did not pass its gate")
    if not ev.adapter_beats_base:
        reasons.append(
            "REJECT: the adapter gate failed (significantly worse than the base, or a measured constraint missed)"
        )
    reasons.append(f"evidence: validated_on {ev.validated_on}")
    for note in ev.unverified:
        reasons.append(f"REJECT: client constraint {note}")
    if not ev.provenance_ok:
        reasons.append("REJECT: provenance (lineage bundle or package attestation) does not verify")
    for name, ok in ev.policies_passed.items():
        if not ok:
            reasons.append(f"REJECT: policy {name} failed")
    reasons += [f"  {f}" for f in ev.policy_findings[:20]]
    from iv_pipelines.sensing.gate import constraint_status

    for name, measured, limit, sense, *n in ev.constraints:
        rel = ">=" if sense == "min" else "<="
        if n and n[0]:
            status, (lo, hi) = constraint_status(measured, n[0], limit, sense)
            ci = f" (95% CI {lo:.3f}-{hi:.3f}, {n[0]} windows)"
        else:
            ok = measured >= limit if sense == "min" else measured <= limit
            status, ci = ("met" if ok else "missed"), ""
        head = {"met": "ok", "uncertain": "uncertain", "missed": "REJECT"}[status]
        tail = {
            "met": "",
            "uncertain": ": misses the limit by less than its noise",
            "missed": " does not hold",
        }[status]
        reasons.append(
            f"{head}: client constraint {name}: measured {measured:.4g} {rel} {limit:.4g}{ci}{tail}"
        )
    gates_ok = not any(r.startswith("REJECT") for r in reasons)
    if gates_ok and score < APPROVE_AT:
        reasons.append(f"REJECT: weighted score {score:.3f} below {APPROVE_AT}")
    approved = gates_ok and score >= APPROVE_AT
    reasons.insert(
        0,
        f"{'APPROVED' if approved else 'REJECTED'}: score {score:.3f} = "
        + " + ".join(f"{WEIGHTS[k]:.2f}x{comp[k]:.3f} ({k})" for k in WEIGHTS),
    )
    return Decision(approved, score, comp, reasons)
