"""`make demo`: register the sample request and run the lifecycle job on embedded defaults."""

from __future__ import annotations

import time
from importlib import resources as importlib_resources
from pathlib import Path

SAMPLE_REQUEST = "fall-detection-acme.yaml"
SAMPLE_DAC = "fall-detection-acme"  # the dac partition of the sample request
# progress logs (epochs, DGM iterations) at INFO; Dagster's per-event DEBUG lines stay in the UI
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# shared (unpartitioned) assets the lifecycle needs: built once, refreshed by their own jobs
SHARED = [
    (
        "score_calibration",
        "score_calibration_job",
        "calibrating scores against the null set (~1 min on 2 cores)",
    ),
    (
        "wifi_sensing_base_model",
        "wifi_sensing_base_model_job",
        "simulating 480 Shadow Twin homes and pretraining the wifi-sensing base model on them (2-7 min on 2 cores)",
    ),
]


def sample_request_path() -> Path:
    repo_copy = Path(__file__).resolve().parent.parent / "examples" / "requests" / SAMPLE_REQUEST
    if repo_copy.exists():
        return repo_copy
    return Path(str(importlib_resources.files("iv_pipelines") / "data" / SAMPLE_REQUEST))


def run_demo(request_file: Path | None = None, keep_running: bool = False) -> int:
    import dagster as dg

    from iv_app.cli import _instance, register_request
    from iv_app.definitions import defs

    t0 = time.perf_counter()
    instance = _instance()
    storage = defs.resources["storage"]
    path = request_file or sample_request_path()
    from iv_pipelines.errors import InputError

    intake_warnings: list[str] = []
    try:
        dac_id, stored, created = register_request(path, instance, storage, intake_warnings)
    except InputError as e:
        print(f"[demo] {e}")
        if "already registered with different content" in str(e):
            print(
                "[demo] the sample request changed since this Dagster home registered it (new fields or "
                f"calibration captures): run with a fresh DAGSTER_HOME, or move {storage.root / 'requests'} "
                "and the DAC's folder under dacs/ aside; nothing was overwritten"
            )
        return 1
    print(f"[demo] request {path.name} -> dac partition {dac_id!r} ({'new' if created else 'existing'})")
    for w in intake_warnings:
        print(f"[demo] intake warning: {w}")
    split: dict[str, float] = {}
    for asset, job_name, what in SHARED:
        stale = _stale_reason(instance, defs, asset)
        if stale:
            print(f"[demo] {what} ({stale})...")
            ts = time.perf_counter()
            shared = defs.resolve_job_def(job_name).execute_in_process(instance=instance, run_config=QUIET)
            if not shared.success:
                print(f"[demo] {asset} FAILED")
                return 1
            split[asset] = time.perf_counter() - ts
            _print_metadata(shared, asset)
            if asset == "wifi_sensing_base_model":
                md = _metadata(shared, asset)
                split["twin simulation"] = float(md.get("simulation_seconds", 0.0))
                split["pretraining"] = float(md.get("train_seconds", 0.0))
                del split[asset]
    job = defs.resolve_job_def("dac_lifecycle_job")
    tl = time.perf_counter()
    result = job.execute_in_process(
        instance=instance, partition_key=dac_id, raise_on_error=False, run_config=QUIET
    )
    split["lifecycle"] = time.perf_counter() - tl
    print(f"[demo] run {result.run_id} {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        print(f"[demo]   {mat.asset_key.to_user_string()}[{dac_id}]")
        for key, value in mat.metadata.items():
            if isinstance(value, dg.PathMetadataValue) or key in ("path",):
                print(f"[demo]     {key}: {value.value}")
    _print_discovery(result)
    _print_adapter(result)
    _print_lineage(result)
    _print_package(result)
    if result.success:
        mesh = defs.resolve_job_def("service_mesh_job").execute_in_process(
            instance=instance, run_config=QUIET
        )
        _print_mesh(mesh)
    _print_deployment(result, defs, storage, keep_running)
    if not result.success:
        for c in result.get_asset_check_evaluations():  # why a blocking check stopped the run
            if not c.passed:
                why = c.description or getattr(c.metadata.get("why"), "value", "")
                print(f"[demo]   check {c.check_name} FAILED: {why}")
        for ev in result.all_events:
            if ev.is_failure:
                print(f"[demo]   failure: {ev.message}")
    print(f"[demo] Dagster home: {instance.root_directory}; storage: {storage.root}")
    total = time.perf_counter() - t0
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in split.items())
    print(
        f"[demo] total wall time {total:.1f} s ({parts}; goals: first run < 600 s, lifecycle < 60 s on 2 cores)"
    )
    return 0 if result.success else 1


def _stale_reason(instance, defs, asset: str) -> str | None:
    """Why a shared asset must be (re)built: never materialized, or built by other code."""
    import dagster as dg

    key = dg.AssetKey(asset)
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return "first run only"
    built = (event.asset_materialization.tags or {}).get("dagster/code_version")
    current = defs.resolve_assets_def(key).code_versions_by_key.get(key)
    if current and built != current:
        return f"code version changed: {built} -> {current}"
    return None


def _print_discovery(result) -> None:
    try:
        outcome = result.output_for_node("validated_hypothesis")
    except Exception:  # the asset did not run (an upstream failure is printed below)
        return
    print(f"[demo] chosen hypothesis: {outcome.hypothesis.text}")
    md = _metadata(result, "validated_hypothesis")
    if md.get("task_matches_request") is False:
        print(
            f"[demo] NOTE: its task ({outcome.hypothesis.task}) is not one the request asks for "
            f"({'; '.join(md.get('request_tasks') or [])}): the validation score does not check the task; "
            "the DAC is trained as the domain's model whatever the hypothesis says (docs/lifecycle.md, Discovery)"
        )
    ops = "  ".join(f"{op}={outcome.percentiles[op]:.3f}" for op in outcome.percentiles)
    print(f"[demo] OBMI percentiles: {ops}  PRIN={outcome.prin:.3f}")
    print(
        f"[demo] validation score {outcome.validation_score:.3f} (threshold {outcome.threshold}) -> "
        f"{'PASS' if outcome.passed else 'FAIL'}; ODS (asal_consciousness) {outcome.ods:.3f}; "
        f"DGM iterations {outcome.iterations} ({outcome.candidates_scored} candidates scored)"
    )


def _metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in mat.metadata.items()}
    return {}


def _print_metadata(result, asset: str) -> None:
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.to_user_string() != asset:
            continue
        for key, value in mat.metadata.items():
            if isinstance(value.value, float | int) and not isinstance(value.value, bool):
                print(
                    f"[demo]     {key}: {value.value:.4g}"
                    if isinstance(value.value, float)
                    else f"[demo]     {key}: {value.value}"
                )


def _print_adapter(result) -> None:
    try:
        report = result.output_for_node("lora_adapter")
    except Exception:
        return
    ev = report["evidence"]
    sim, real = ev["simulation"], ev["client_device"]
    print(
        f"[demo] LoRA adapter ({report['trainable_params']:,} of {report['total_params']:,} parameters trainable, "
        f"{report['train_seconds']:.1f} s); {report['why']}"
    )
    dec = ev["decision"]
    print(
        f"[demo] evidence: validated_on = {ev['validated_on'].upper()}; fall threshold {dec['fall_threshold']:.3f}"
    )
    if dec.get("threshold_set_windows"):
        sets = "; ".join(
            f"{src}: {dec['threshold_set_false_alarm_rate'][src]:.3f} of {n} non-fall windows "
            f"(95 % upper bound {dec['threshold_set_false_alarm_upper95'][src]:.3f})"
            for src, n in dec["threshold_set_windows"].items()
        )
        print(
            f"[demo]   threshold set false alarms (target {dec['target_false_alarm_rate']:.3f}"
            f"{'' if dec.get('certified') else ', NOT certified by every set'}): {sets}"
        )
    from iv_pipelines.sensing.intensity import describe

    print(f"[demo]   fall-intensity check: {describe(report.get('intensity_check'))}")
    print(
        f"[demo]   SIMULATED ({sim['data']}): accuracy {sim['accuracy']:.3f}, fall recall "
        f"{sim.get('recall_fall', float('nan')):.3f}, fall false alarms {sim['fall_false_alarm_rate']:.3f} "
        "(simulated evidence: not a measurement on a real home)"
    )
    if real:
        print(f"[demo]   REAL client device ({real['data']}): {real_evidence_line(real)}")
    else:
        print("[demo]   REAL client device: none (no held-out real captures in the request)")
    cal = report.get("calibration") or {}
    used = [c for c in cal.get("captures", []) if c.get("split") != "test"]
    if used:
        kinds = ", ".join(f"{c['activity']} {c['seconds']:.0f} s ({c['origin']})" for c in used)
        print(f"[demo]   device calibration from: {kinds}")
    for w in cal.get("warnings", []):
        print(f"[demo]   calibration warning: {w}")


def real_evidence_line(real: dict) -> str:
    """The client-device evidence as one line: accuracy, false alarms, and, where the request
    gave real falls for evaluation, fall recall by window and by capture, with 95 % intervals."""
    nan = float("nan")
    parts = [f"accuracy {real.get('accuracy', nan):.3f}"]
    fa = real.get("fall_false_alarm_rate")
    if fa is not None:
        lo, hi = real.get("fall_false_alarm_rate_interval95", [nan, nan])
        parts.append(
            f"fall false alarms {fa:.3f} (95 % {lo:.2f}-{hi:.2f}, {real.get('n', 0) - real.get('n_fall', 0)} windows)"
        )
    if "recall_fall" in real:
        lo, hi = real.get("recall_fall_interval95", [nan, nan])
        parts.append(
            f"fall recall {real['recall_fall']:.3f} (95 % {lo:.2f}-{hi:.2f}, {real.get('n_fall', 0)} windows)"
        )
    for act, pc in (real.get("per_capture") or {}).items():
        what = "detected" if act == "fall" else "with a false alarm"
        lo, hi = pc["interval95"]
        parts.append(
            f"{act} captures {what}: {pc['any_window_called_fall']} of {pc['captures']} ({lo:.2f}-{hi:.2f})"
        )
    return ", ".join(parts)


def _print_lineage(result) -> None:
    try:
        out = result.output_for_node("lineage_proof")
    except Exception:
        return
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    print(
        f"[demo] lineage bundle {out['bundle']}: Merkle root {out['merkle_root']}, signed by "
        f"{out['keyid'][:16]}...; provenance_verifies "
        f"{'PASS' if checks.get('provenance_verifies') else 'FAIL'} (check again: iv verify {out['bundle']})"
    )
    zk_path = Path(out["bundle"]) / "zk_proof.json"
    if zk_path.exists():
        import json

        doc = json.loads(zk_path.read_text())
        root, threshold, commitment = doc["public"]
        print(
            f"[demo] zk proof (Groth16): {doc['leaf']} is in the lineage and its score clears "
            f"{int(threshold) / doc['score_scale']:.2f}; public Poseidon root {root[:20]}..., commitment "
            f"{commitment[:20]}...; proved in {doc['timings_s']['prove']:.2f} s, verified in "
            f"{doc['timings_s']['verify']:.2f} s"
        )
    try:
        reg = result.output_for_node("utid")
    except Exception:
        return
    how = "registered now" if reg["created"] else "already registered: same digest, same UTID"
    print(
        f"[demo] UTID {reg['utid']} ({how}) on the {reg['backend']} ledger: contract {reg['contract']}, "
        f"block {reg['block_number']}, tx {reg['tx_hash'] or '-'}, gas {reg['gas_used']}"
    )


def _print_package(result) -> None:
    try:
        energy = result.output_for_node("energy_signature")
    except Exception:
        return
    print(
        f"[demo] energy signature (measured: {energy['method']}): E_state {energy['E_state']:.1f} J, "
        f"dE_dt {energy['dE_dt']:.2f} W, S_state {energy['S_state']:.3f} over "
        f"{len(energy['steps_j'])} steps"
    )
    try:
        pkg = result.output_for_node("dac_package")
    except Exception:
        return
    print(
        f"[demo] package {pkg['version']}: {pkg['tarball']} (sha256 {pkg['digest'][:16]}...), attestation "
        f"{Path(pkg['attestation']).name}; image {pkg['image']}; measured capsule peak RSS "
        f"{pkg['probe']['peak_rss_mib']:.0f} MiB, model load {pkg['probe']['load_seconds']:.2f} s"
    )
    try:
        review = result.output_for_node("shield_review")
    except Exception:
        return
    for r in review["decision"]["reasons"]:
        print(f"[demo] AI Shield: {r}")


def _print_deployment(result, defs, storage, keep_running: bool) -> None:
    try:
        dep = result.output_for_node("dac_deployment")
    except Exception:
        return
    smoke = dep.get("smoke")
    print(f"[demo] deployed {dep['dac_id']} {dep['version']} on {dep['target']}: {dep['url']}")
    if smoke:
        per = "  ".join(f"{k}={v:.2f}" for k, v in smoke["per_class_accuracy"].items())
        print(
            f"[demo] capsule smoke test: {smoke['correct']}/{smoke['n']} held-out twin episodes right "
            f"(accuracy {smoke['accuracy']:.3f}; {per}); latency p50 {smoke['latency_ms_p50']:.1f} ms, "
            f"p99 {smoke['latency_ms_p99']:.1f} ms (HTTP round trip, 2.2 s of CSI per request)"
        )
    if dep["target"] != "local":
        return
    try:  # what the running capsule says about the package it serves
        import json
        import urllib.request

        with urllib.request.urlopen(dep["url"] + "/readyz", timeout=5) as r:
            print(
                f"[demo] capsule package {json.loads(r.read()).get('attestation') or 'attestation not reported'}"
            )
    except (OSError, ValueError) as e:
        print(f"[demo] capsule /readyz unreachable ({e})")
    deployer = defs.resources["deployer"].local(storage.root)
    if keep_running:
        print(
            f"[demo] capsule left running: try curl {dep['url']}/readyz ; stop it with kill {dep['details']['supervisor_pid']}"
        )
    else:
        stopped = deployer.stop(dep["dac_id"])
        print(
            f"[demo] capsule {'stopped' if stopped else 'was not running'} (run `iv demo --keep-running` to keep it)"
        )


def _print_mesh(result) -> None:
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        md = {k: v.value for k, v in mat.metadata.items()}
        if mat.asset_key.to_user_string() == "capsule_pins":
            print(f"[demo] Capsule Pin records: {md['status']} (in {md['pins_dir']})")
            continue
        print(
            f"[demo] service mesh: {md['services']} services, {md['links']} links; TTF routes in "
            f"{md['routes_ms']} ms; {md['rerouted']} capsule routes (re)set, {md['kept_by_hysteresis']} kept by hysteresis "
            f"(routes: {md['routes_path']})"
        )
