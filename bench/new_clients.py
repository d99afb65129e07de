"""New clients: eight requests written as users would write them, each taken through the whole
lifecycle (discovery, twin and device calibration, adapter and its paired gate, proof, ledger,
package, AI Shield review, local deployment with a smoke test), one after another.

Prints, per request, how far it got (the last asset materialized, or the failure and why),
its hypothesis's validation score and task, where its evidence comes from and the wall time; then DACs per hour next to N x the first
DAC's time measured in the same run.

    .venv/bin/python bench/new_clients.py                      # all 8, in make demo's .dagster_home
    .venv/bin/python bench/new_clients.py --only 01,05,08 --home /tmp/h --base-model DIR
      (--base-model copies an already trained wifi-sensing base model into the new home
       instead of pretraining one; tests/test_new_clients.py runs three requests this way)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIENTS = REPO / "examples" / "requests" / "clients"


@dataclass
class Outcome:
    request: str
    dac_id: str
    reached: str
    ok: bool
    seconds: float
    validated_on: str
    selected: str
    why: str
    validation_score: float | None = None  # the hypothesis gate's score (threshold 0.95)
    task: str = "-"  # the validated hypothesis's task, starred when the request does not ask for it


def run(paths: list[Path], base_model: Path | None, log=print) -> list[Outcome]:
    import dagster as dg

    from iv_app.cli import register_request
    from iv_app.definitions import defs
    from iv_app.demo import QUIET, SHARED, _stale_reason

    instance = dg.DagsterInstance.get()
    storage = defs.resources["storage"]
    if base_model is not None:
        target = storage.layout.base_model_dir()
        if not (target / "model.safetensors").exists():
            shutil.copytree(base_model, target, dirs_exist_ok=True)
            log(f"[clients] base model copied from {base_model}")
    for asset, job_name, what in SHARED:
        if (
            asset == "wifi_sensing_base_model"
            and (storage.layout.base_model_dir() / "model.safetensors").exists()
        ):
            if base_model is not None or not _stale_reason(instance, defs, asset):
                continue
        if asset == "score_calibration" and not _stale_reason(instance, defs, asset):
            continue
        log(f"[clients] {what}...")
        if not defs.resolve_job_def(job_name).execute_in_process(instance=instance, run_config=QUIET).success:
            raise SystemExit(f"{asset} failed")
    job = defs.resolve_job_def("dac_lifecycle_job")
    deployer = defs.resources["deployer"].local(storage.root)
    out = []
    for path in paths:
        t0 = time.perf_counter()
        try:
            dac_id, _, _ = register_request(path, instance, storage)
        except Exception as e:  # a request a user wrote can be invalid: that is an outcome too
            out.append(
                Outcome(path.name, "-", "intake", False, time.perf_counter() - t0, "-", "-", str(e)[:300])
            )
            continue
        result = job.execute_in_process(
            instance=instance, partition_key=dac_id, raise_on_error=False, run_config=QUIET
        )
        done = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
        reached = done[-1] if done else "nothing"
        why = ""
        if not result.success:
            fails = [e.message for e in result.all_events if e.is_failure] or ["unknown"]
            checks = [c for c in result.get_asset_check_evaluations() if not c.passed]
            why = "; ".join([f"check {c.check_name} failed" for c in checks] + fails[:1])[:400]
        validated_on = selected = "-"
        ev_path = storage.dac_dir(dac_id) / "adapter" / "evaluation.json"
        if ev_path.exists():
            ev = json.loads(ev_path.read_text())
            validated_on, selected = ev["evidence"]["validated_on"], ev["selected"]
        vh_path = storage.dac_dir(dac_id) / "validated_hypothesis.json"
        vh = json.loads(vh_path.read_text()) if vh_path.exists() else {}
        score, check = vh.get("validation_score"), vh.get("task_check") or {}
        task = check.get("task", "-") + ("" if check.get("matches", True) else " (NOT ASKED FOR)")
        deployer.stop(dac_id)
        ok = result.success and "dac_deployment" in done
        out.append(
            Outcome(
                path.name,
                dac_id,
                reached,
                ok,
                time.perf_counter() - t0,
                validated_on,
                selected,
                why,
                score,
                task,
            )
        )
        log(
            f"[clients] {path.name}: {'deployed' if ok else 'STOPPED at ' + reached} in {out[-1].seconds:.0f} s {why}"
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=REPO / ".dagster_home", help="DAGSTER_HOME to run in")
    ap.add_argument("--only", default="", help="comma-separated request prefixes, e.g. 01,05,08")
    ap.add_argument("--base-model", type=Path, help="copy this trained base model instead of pretraining")
    ap.add_argument("--json", type=Path, help="write the outcomes here")
    args = ap.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    if not (args.home / "dagster.yaml").exists():
        (args.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(args.home.resolve())  # before the code location is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    paths = sorted(CLIENTS.glob("*.yaml"))
    if args.only:
        paths = [p for p in paths if p.name.split("-")[0] in args.only.split(",")]
    t0 = time.perf_counter()
    outcomes = run(paths, args.base_model)
    total = time.perf_counter() - t0
    print(
        "\n| request | DAC | outcome | validation score | hypothesis task | evidence | model | time (s) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for o in outcomes:
        score = "-" if o.validation_score is None else f"{o.validation_score:.3f}"
        print(
            f"| {o.request} | {o.dac_id} | {'deployed' if o.ok else 'stopped at ' + o.reached + ': ' + o.why} | "
            f"{score} | {o.task} | {o.validated_on} | {o.selected} | {o.seconds:.0f} |"
        )
    done = sum(o.ok for o in outcomes)
    per = [o.seconds for o in outcomes]
    if per:
        print(
            f"{done} of {len(outcomes)} reached dac_deployment; {3600 * len(per) / sum(per):.0f} DACs/hour "
            f"(wall {total:.0f} s incl. shared assets); N x first DAC = {len(per) * per[0]:.0f} s vs "
            f"{sum(per):.0f} s measured ({sum(per) / (len(per) * per[0]):.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n")
    return 0 if done == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
