"""Operations: the daily energy history of every DAC and service, backfillable."""

import datetime as dt
import warnings

import dagster as dg

from assets.metering import ENERGY_TAG
from assets.packaging import METERED_STEPS
from resources.deploy import EnergyAtlasResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]
METERED = (*METERED_STEPS, "dac_package", "shield_review", "dac_deployment")  # every @metered DAC step
daily = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")


def metered_steps(instance: dg.DagsterInstance) -> list:
    """Every metered step observation in the event log (partition = DAC id)."""
    from iv_pipelines.energy.history import StepRecord

    out = []
    for asset in METERED:
        cursor = None
        while True:
            res = instance.fetch_observations(dg.AssetKey(asset), limit=1000, cursor=cursor)
            for r in res.records:
                obs = r.event_log_entry.asset_observation
                if obs is None or (obs.tags or {}).get(ENERGY_TAG) != "step" or not obs.partition:
                    continue
                md = {k: v.value for k, v in obs.metadata.items()}
                out.append(
                    StepRecord(
                        obs.partition,
                        asset,
                        int(md["started_at_ms"]),
                        float(md["energy_j"]),
                        float(md["wall_seconds"]),
                    )
                )
            if not res.has_more:
                break
            cursor = res.cursor
    return out


warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=7),
    group_name="operations",
    owners=OWNERS,
    kinds={"ladybug"},
    description=(
        "Per day: one energy state per DAC (its metered lifecycle steps that day) and per service "
        "(telemetry), written to the Energy Atlas idempotently (the day's window is deleted, then "
        "inserted). Backfill a range from the UI; up to 7 days per run."
    ),
)
def energy_history(
    context: dg.AssetExecutionContext, storage: FactoryStorage, atlas: EnergyAtlasResource
) -> dg.MaterializeResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iv_pipelines.energy.history import DAY_MS, SOURCE, dac_states, service_states
    from iv_pipelines.paths import atomic_write_text

    steps = metered_steps(context.instance)
    window = context.partition_time_window
    days, rows, problems = [], [], []
    with atlas.open(storage.root) as graph:
        for key in context.partition_keys:
            start = dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC)
            t0 = int(start.timestamp() * 1000)
            states = dac_states(steps, t0, key)
            svc, bad = service_states(storage.root / "telemetry", t0, key)
            problems += bad
            removed = graph.delete_window(t0, t0 + DAY_MS, source=SOURCE)
            added = graph.record(states + svc)
            total = sum(s.E_state for s in states + svc)
            days.append(key)
            rows.append((key, len(states), len(svc), total, removed, added))
            context.log.info(
                f"{key}: {len(states)} DAC and {len(svc)} service states ({total:.1f} J); replaced {removed}"
            )
    problems = sorted(set(problems))  # the files are read once per day
    if problems:
        context.log.warning(f"{len(problems)} bad telemetry lines skipped: {problems[:5]}")
    out = storage.root / "energy" / "history"
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=100)
    ax.bar(days, [r[3] for r in rows])
    ax.set_ylabel("energy (J)")
    ax.set_title(f"energy per day, {days[0]}..{days[-1]}", fontsize=9)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    png = out / f"{days[0]}_{days[-1]}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    table = (
        "| day | DAC states | service states | energy (J) | replaced | written |\n|---|---|---|---|---|---|\n"
        + "\n".join(f"| {d} | {a} | {b} | {e:.1f} | {r} | {w} |" for d, a, b, e, r, w in rows)
    )
    atomic_write_text(out / f"{days[0]}_{days[-1]}.md", table + "\n")
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "window": f"{window.start.isoformat()} .. {window.end.isoformat()}",
            "dac_states": sum(r[1] for r in rows),
            "service_states": sum(r[2] for r in rows),
            "energy_J": round(sum(r[3] for r in rows), 3),
            "summary": dg.MetadataValue.md(table),
            "plot": dg.MetadataValue.path(str(png)),
            "bad_telemetry_lines": len(problems),
        }
    )
