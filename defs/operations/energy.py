"""Operations: the daily energy history (backfillable), energy trends, and the sensor that
starts healing on an energy anomaly in the Atlas."""

import datetime as dt
import warnings

import dagster as dg

from defs.common import (
    OWNERS,
    image,
    schedule,
    step_observations,
    tidy,
)
from defs.operations.health import MAX_PER_TICK, dac_healing_job
from defs.packaging import METERED_STEPS
from iv_pipelines.paths import atomic_write_text
from resources.deploy import EnergyAtlasResource
from resources.storage import FactoryStorage

METERED = (*METERED_STEPS, "dac_package", "shield_review", "dac_deployment")  # every @metered DAC step

daily = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")


def metered_steps(instance: dg.DagsterInstance) -> list:
    """Every metered step observation in the event log (partition = DAC id)."""
    from iv_pipelines.energy.history import StepRecord

    return [
        StepRecord(dac, asset, int(md["started_at_ms"]), float(md["energy_j"]), float(md["wall_seconds"]))
        for asset in METERED
        for dac, md, _ in step_observations(instance, asset)
    ]


warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=7),
    pool="atlas",
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

    steps = metered_steps(context.instance)
    window = context.partition_time_window
    days, rows, problems = [], [], []
    with atlas.open(storage.root) as graph:
        for key in context.partition_keys:
            start = dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC)
            t0 = int(start.timestamp() * 1000)
            states = dac_states(steps, t0, key)
            svc, bad = service_states(storage.layout.telemetry_dir(), t0, key)
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
    out = storage.layout.energy_history_dir()
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
        metadata=tidy(
            {
                "days": len(days),
                "window": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "dac_states": sum(r[1] for r in rows),
                "service_states": sum(r[2] for r in rows),
                "energy_J": round(sum(r[3] for r in rows), 3),
                "summary": dg.MetadataValue.md(table),
                "plot": image(png),
                "plot_path": dg.MetadataValue.path(str(png)),
                "bad_telemetry_lines": len(problems),
            }
        )
    )


@dg.asset(
    pool="atlas",
    group_name="operations",
    owners=OWNERS,
    kinds={"ladybug"},
    deps=["service_mesh"],
    description=(
        "energy_atlas_optimization: the last 24 h of DAC energy trajectories against the 24 h "
        "before (rising DACs), and the routes whose cost rose since the last routing snapshot "
        "(service_mesh recomputes the routing tables in the same job)."
    ),
)
def energy_trends(
    context: dg.AssetExecutionContext, storage: FactoryStorage, atlas: EnergyAtlasResource
) -> dg.MaterializeResult:
    import time

    now = int(time.time() * 1000)
    day = 86_400_000
    rows = []
    with atlas.open(storage.root) as graph:
        dacs = [r["id"] for r in graph.run("MATCH (d:DAC) RETURN d.id AS id ORDER BY id")]
        for d in dacs:
            cur = [s.E_state for s in graph.trajectory(f"dac:{d}", now - day, now)]
            prev = [s.E_state for s in graph.trajectory(f"dac:{d}", now - 2 * day, now - day)]
            if cur and prev:
                a, b = sum(prev) / len(prev), sum(cur) / len(cur)
                rows.append((d, a, b, (b - a) / a if a else 0.0))
    rising = [r for r in rows if r[3] > 0.10]
    mesh = context.instance.get_latest_materialization_event(dg.AssetKey("service_mesh"))
    rose = (
        mesh.asset_materialization.metadata["routes_cost_rose"].value
        if mesh and "routes_cost_rose" in mesh.asset_materialization.metadata
        else {}
    )
    table = (
        "| DAC | mean E previous 24 h (J) | mean E last 24 h (J) | change |\n|---|---|---|---|\n"
        + "\n".join(f"| {d} | {a:.1f} | {b:.1f} | {c:+.1%} |" for d, a, b, c in rows)
    )

    return dg.MaterializeResult(
        metadata=tidy(
            {
                "dacs_compared": len(rows),
                "rising_dacs": dg.MetadataValue.json([r[0] for r in rising]),
                "routes_cost_rose": dg.MetadataValue.json(rose),
                "trends": dg.MetadataValue.md(table if rows else "(no DAC with states in both windows)"),
            }
        )
    )


energy_trends_job = dg.define_asset_job(
    name="energy_trends_job",
    selection=dg.AssetSelection.assets("service_mesh", "energy_trends"),
    description="Recomputes routing tables and reports DACs and routes whose energy cost rose (last 24 h).",
)

energy_trends_schedule = schedule(
    "energy_trends_schedule",
    energy_trends_job,
    "0 2 * * *",
    "Daily 02:00: recompute routing tables; report rising DAC energy and route costs (seed: energy_atlas_optimization).",
)


@dg.sensor(
    job=dac_healing_job,
    minimum_interval_seconds=300,
    required_resource_keys={"storage", "atlas"},
    description="Energy anomalies in the Atlas (3 sigma) start a healing run for their DAC.",
)
def energy_variance_sensor(context: dg.SensorEvaluationContext):
    from iv_pipelines.atlas.engine import window_params

    since = int(context.cursor or 0)
    found = []
    with context.resources.atlas.open(context.resources.storage.root) as atlas:
        for source in ("energy_history", "lifecycle"):
            found += [
                (r["ts"], r["dac"], source)
                for r in atlas.query("anomalies", k=3.0, min_states=5, source=source, **window_params())
                if r["ts"] > since
            ]
    if not found:
        return dg.SkipReason(f"no energy anomaly after {since}")
    found.sort()
    batch = found[:MAX_PER_TICK]
    context.update_cursor(str(batch[-1][0]))
    return [
        dg.RunRequest(
            run_key=f"energy:{dac}:{source}:{ts}",
            run_config={
                "ops": {
                    "heal_dac": {"config": {"dac_id": dac, "reason": f"energy_variance ({source}, ts {ts})"}}
                }
            },
            tags={"iv/trigger": "energy_variance"},
        )
        for ts, dac, source in batch
    ]
