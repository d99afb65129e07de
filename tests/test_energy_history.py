"""energy_history: a 7-day backfill in one run, idempotent re-runs of a day, telemetry."""

import datetime as dt
import json

import dagster as dg
import pytest

from defs.common import ENERGY_TAG
from defs.operations.energy import energy_history
from iv_pipelines.energy.history import DAY_MS, SOURCE
from resources.deploy import EnergyAtlasResource
from tests.conftest import materialized

DAYS = [f"2026-11-{d:02d}" for d in range(10, 17)]


def _ms(day: str, hour: int = 12) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC, hour=hour).timestamp() * 1000)


@pytest.fixture
def setup(storage, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    # metered steps of two DACs on three of the days (as @metered logs them)
    for day, dac, step, e in [
        (DAYS[0], "acme", "lora_adapter", 30.0),
        (DAYS[0], "acme", "utid", 10.0),
        (DAYS[2], "acme", "lora_adapter", 20.0),
        (DAYS[2], "globex", "hypotheses", 5.0),
        (DAYS[6], "globex", "lora_adapter", 8.0),
    ]:
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=step,
                partition=dac,
                tags={ENERGY_TAG: "step"},
                metadata={
                    "started_at_ms": _ms(day),
                    "energy_j": e,
                    "wall_seconds": 2.0,
                    "cpu_seconds": e / 2.76,
                },
            )
        )
    tel = storage.root / "telemetry"
    tel.mkdir()
    (tel / "capsules.jsonl").write_text(
        json.dumps(
            {
                "service": "fall-detection-acme",
                "ts_ms": _ms(DAYS[1]),
                "cpu_seconds": 3.0,
                "wall_seconds": 60.0,
            }
        )
        + "\n"
        + "{broken\n"
    )
    atlas = EnergyAtlasResource(root_dir=str(tmp_path / "atlas"))
    job = dg.define_asset_job(
        "history", selection=[energy_history], partitions_def=energy_history.partitions_def
    )
    defs = dg.Definitions(assets=[energy_history], jobs=[job], resources={"storage": storage, "atlas": atlas})
    return instance, defs, atlas, storage


def _run(defs, instance, first, last):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return defs.resolve_job_def("history").execute_in_process(instance=instance, tags=tags)


def test_seven_day_backfill_then_rerun_does_not_duplicate(setup):
    instance, defs, atlas, storage = setup
    res = _run(defs, instance, DAYS[0], DAYS[-1])
    md = materialized(res)
    assert md["days"] == 7 and md["dac_states"] == 4 and md["service_states"] == 1
    assert md["energy_J"] == pytest.approx(30 + 10 + 20 + 5 + 8 + 3.0 * 2.76)
    assert md["bad_telemetry_lines"] == 1
    with atlas.open(storage.root) as g:
        acme = g.trajectory("dac:acme")
        assert [(s.ts_ms, s.E_state) for s in acme] == [(_ms(DAYS[0], 0), 40.0), (_ms(DAYS[2], 0), 20.0)]
        assert acme[0].dE_dt == pytest.approx(40.0 / 4.0) and 0 < acme[0].S_state < 1  # two unequal steps
        before = g.run("MATCH (e:EnergyState) RETURN count(e) AS n")[0]["n"]
    _run(defs, instance, DAYS[2], DAYS[2])  # re-run one day
    _run(defs, instance, DAYS[0], DAYS[-1])  # and the whole week again
    with atlas.open(storage.root) as g:
        assert g.run("MATCH (e:EnergyState) RETURN count(e) AS n")[0]["n"] == before == 5
        day = _ms(DAYS[2], 0)
        assert (
            len(
                g.run(
                    "MATCH (e:EnergyState) WHERE e.ts >= $a AND e.ts < $b AND e.source = $s RETURN e.id",
                    {"a": day, "b": day + DAY_MS, "s": SOURCE},
                )
            )
            == 2
        )


def test_backfill_policy_and_partitions():
    assert energy_history.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=7)
    assert isinstance(energy_history.partitions_def, dg.DailyPartitionsDefinition)
