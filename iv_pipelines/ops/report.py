"""The monthly client report: per client, its DACs, their scores, the energy they used,
revenue attribution from the ledger and the incidents healed; HTML with embedded plots.

Energy per DAC for the month = the sum of its `energy_history` states in the month (daily
totals), or, when no history was materialized, of its per-run `lifecycle` states. Revenue is
recorded only when an amount is given for the client (there is no billing system here): the
amount is split across the client's DACs in proportion to that energy (exact cents, on the
ledger), and the report shows the split read back from the transaction's events.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from iv_pipelines.storage import StorageLayout


@dataclass
class DacMonth:
    dac_id: str
    utid: str | None
    validation_score: float | None
    adapter_accuracy: float | None
    health_score: float | None
    energy_j: float
    energy_source: str
    daily: list[tuple[int, float]] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)
    revenue_cents: int | None = None
    validated_on: str = "unknown"  # client_device | simulation_only: what the accuracy rests on


def month_window(period: str) -> tuple[int, int]:
    start = dt.datetime.fromisoformat(period[:7] + "-01").replace(tzinfo=dt.UTC)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _decisive(ev: dict) -> dict:
    """The shipped model's accuracy on the evidence that decides (client device or simulation)."""
    e = ev.get("evidence") or {}
    if e.get("validated_on") == "client_device" and e.get("client_device"):
        return e["client_device"]
    return e.get("simulation") or {}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def gather(storage_root: Path, period: str, atlas) -> dict[str, list[DacMonth]]:
    """client_id -> its DACs' month."""
    t0, t1 = month_window(period)
    layout = StorageLayout(storage_root)
    health = {r["dac_id"]: r.get("score") for r in layout.health_rows()}
    clients: dict[str, list[DacMonth]] = {}
    for dac_id in layout.requested_dacs():
        d = layout.dac_dir(dac_id, create=False)
        req = layout.dac_request(dac_id)
        vh = _json(d / "validated_hypothesis.json") or {}
        ev = _json(d / "adapter" / "evaluation.json") or {}
        reg = _json(d / "lineage" / "registration.json") or {}
        states = atlas.trajectory(f"dac:{d.name}", t0, t1)
        hist = [s for s in states if s.source == "energy_history"]
        used = hist or [s for s in states if s.source == "lifecycle"]
        incidents = (
            [r for r in atlas.query("healing_actions", dac_id=d.name) if t0 <= r["ts"] < t1]
            if hasattr(atlas, "query")
            else []
        )
        clients.setdefault(req["client_id"], []).append(
            DacMonth(
                dac_id=d.name,
                utid=reg.get("utid"),
                validation_score=vh.get("validation_score"),
                adapter_accuracy=_decisive(ev).get("accuracy"),
                validated_on=(ev.get("evidence") or {}).get("validated_on", "unknown"),
                health_score=health.get(d.name),
                energy_j=sum(s.E_state for s in used),
                energy_source="energy_history" if hist else ("lifecycle" if used else "none"),
                daily=[(s.ts_ms, s.E_state) for s in used],
                incidents=incidents,
            )
        )
    return clients


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def plots(dacs: list[DacMonth]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=100)
    ax.bar([d.dac_id for d in dacs], [d.energy_j for d in dacs])
    ax.set_ylabel("energy (J)")
    ax.set_title("energy per DAC this month", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    out.append(_png(fig))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=100)
    for d in dacs:
        if d.daily:
            ax.plot(
                [dt.datetime.fromtimestamp(t / 1000, dt.UTC) for t, _ in d.daily],
                [e for _, e in d.daily],
                marker="o",
                ms=3,
                label=d.dac_id,
            )
    ax.set_ylabel("energy (J)")
    ax.set_title("energy states over the month", fontsize=9)
    if any(d.daily for d in dacs):
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.append(_png(fig))
    plt.close(fig)
    return out


def _fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def _evidence_label(validated_on: str) -> str:
    return {
        "client_device": "real captures of your device (held out)",
        "simulation_only": "SIMULATED room only (no real labelled captures)",
    }.get(validated_on, validated_on)


def render_html(client: str, period: str, dacs: list[DacMonth], revenue: dict | None) -> str:
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(d.dac_id)}</td><td>{e(d.utid or '-')}</td><td>{_fmt(d.validation_score)}</td>"
        f"<td>{_fmt(d.adapter_accuracy)}</td><td>{e(_evidence_label(d.validated_on))}</td>"
        f"<td>{_fmt(d.health_score)}</td><td>{d.energy_j:.1f}</td>"
        f"<td>{e(d.energy_source)}</td><td>{len(d.incidents)}</td>"
        f"<td>{'-' if d.revenue_cents is None else f'{d.revenue_cents / 100:.2f}'}</td></tr>"
        for d in dacs
    )
    incidents = (
        "\n".join(
            f"<li>{e(d.dac_id)}: {e(i['issue'])} → {e(i['strategy'])} ({'healed' if i['ok'] else 'not healed'}), "
            f"{dt.datetime.fromtimestamp(i['ts'] / 1000, dt.UTC).isoformat(timespec='minutes')}</li>"
            for d in dacs
            for i in d.incidents
        )
        or "<li>none</li>"
    )
    rev = (
        f"<p>Revenue {revenue['total_cents'] / 100:.2f} USD attributed by energy share on the ledger "
        f"(transaction <code>{e(revenue['tx_hash'])}</code>; shares read back from its events).</p>"
        if revenue
        else "<p>No revenue amount was given for this client and month: nothing attributed.</p>"
    )
    imgs = "".join(f'<img alt="plot" src="data:image/png;base64,{p}">' for p in plots(dacs))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(client)} — DAC report {e(period)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>{e(client)}: Deploy Anywhere Capsules, {e(period)}</h1>
<p>{len(dacs)} DAC(s); energy {sum(d.energy_j for d in dacs):.1f} J this month (measured: metered CPU time × power model).</p>
<table><thead><tr><th>DAC</th><th>UTID</th><th>validation score</th><th>held-out accuracy</th><th>accuracy measured on</th><th>latest health score</th>
<th>energy (J)</th><th>energy from</th><th>incidents</th><th>revenue (USD)</th></tr></thead><tbody>
{rows}
</tbody></table>
<h2>Revenue</h2>{rev}
<h2>Incidents healed</h2><ul>{incidents}</ul>
<h2>Energy</h2>{imgs}
</body></html>
"""
