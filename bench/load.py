"""Load on one machine (issue #19): N DAC requests dropped into the drop folder at once,
taken by the real Dagster daemon — `dac_request_drop_sensor`, the run queue and the pools of
the shipped `deploy/dagster.local.yaml` (2 runs at once, one per partition, one step per pool)
— through the whole lifecycle to a deployed capsule.

For each N (default 1, 5, 20; N = 1 first: the single-DAC time of this same run) it prints
DACs completed per hour, the p50 / p95 request -> deployed time, the wall time next to
N x the single-DAC time (the ratio is what queuing and sharing cost), the peak memory of
Dagster's processes (daemon, code server, runs and their steps; deployed capsules apart), and
what it checked: every run finished (deployed, or stopped by a blocking gate that says why:
reported apart, a product decision), every deployed DAC's package, its UTID registration
re-verified on the ledger (`ledger.sync.sync_all`), its energy state in the Energy Atlas, no
"database is locked" anywhere in the runs' logs, no two runs of one partition and no two
steps of one pool at the same time. The requests are the example clients' (01-07) under new
ids. Times include the drop sensor's tick (every 30 s) before the first run starts.

    .venv/bin/python bench/load.py                     # N = 1, 5, 20 on SQLite (after make demo)
    DAGSTER_PG_USERNAME=iv_test DAGSTER_PG_PASSWORD=iv_test \\
      .venv/bin/python bench/load.py --n 5 --postgres  # Dagster storage in PostgreSQL (make test starts one)
    .venv/bin/python bench/load.py --n 5 --from-home DIR --json out.json --keep DIR
      (--from-home: a storage root with a trained base model and score calibration, default
       .dagster_home/iv; tests/test_load_concurrency.py runs N = 5 this way)

Everything it trains on is SIMULATED (those requests carry no captures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIENTS = REPO / "examples" / "requests" / "clients"


def request_text(i: int) -> str:
    """Request i: one of the example clients' requests (01-07, written as users would; 08
    needs its capture files beside it), as its own DAC and client (`-l<i>` suffixes)."""
    import yaml

    templates = sorted(p for p in CLIENTS.glob("0[1-7]-*.yaml"))
    doc = yaml.safe_load(templates[i % len(templates)].read_text())
    doc["dac_id"] = f"{doc['dac_id'][:56]}-l{i:02d}"
    doc["client_id"] = f"{doc['client_id'][:56]}-l{i:02d}"
    return (
        f"# load test request {i} (bench/load.py), from {templates[i % len(templates)].name}\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def prepare_home(home: Path, from_home: Path, postgres_db: str | None) -> Path:
    """A fresh DAGSTER_HOME with the shipped instance config and the shared assets (base
    model, score calibration) copied from `from_home`; returns the storage root."""
    from iv_pipelines.storage import StorageLayout

    if home.exists():
        shutil.rmtree(home)
    layout = StorageLayout(home / "iv")
    layout.ensure()
    src = StorageLayout(from_home)
    if (
        not (src.base_model_dir() / "model.safetensors").is_file()
        or not src.score_calibration_file().is_file()
    ):
        raise SystemExit(
            f"{from_home}: no trained base model or score calibration there (run make demo first)"
        )
    shutil.copytree(src.base_model_dir(), layout.base_model_dir())
    layout.score_calibration_file().parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.score_calibration_file(), layout.score_calibration_file())
    rep = src.score_calibration_file().with_suffix(".report.json")
    if rep.is_file():
        shutil.copy(rep, layout.score_calibration_file().with_suffix(".report.json"))
    cfg = (REPO / "deploy" / "dagster.local.yaml").read_text()
    if postgres_db:
        cfg += (
            "storage:\n  postgres:\n    postgres_db:\n      scheme: postgresql+psycopg2\n"
            + "".join(
                f"      {k}:\n        env: {v}\n"
                for k, v in (
                    ("username", "DAGSTER_PG_USERNAME"),
                    ("password", "DAGSTER_PG_PASSWORD"),
                    ("hostname", "DAGSTER_PG_HOST"),
                    ("port", "DAGSTER_PG_PORT"),
                )
            )
            + f"      db_name: {postgres_db}\n"
        )
    (home / "dagster.yaml").write_text(cfg)
    return layout.root


def _rss_mib(root_pid: int, home: Path) -> tuple[float, float]:
    """(Dagster processes: the daemon and everything under it; capsules: the supervisors and
    runtimes serving this home's packages, wherever they were reparented) resident MiB."""
    import psutil

    dag = caps = 0.0
    try:
        tree = {root_pid, *(p.pid for p in psutil.Process(root_pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        tree = set()
    for p in psutil.process_iter(["pid", "cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        rss = (p.info["memory_info"].rss if p.info["memory_info"] else 0) / 2**20
        if str(home) in cmd and ("iv_pipelines.runtime" in cmd or "iv_pipelines.deploy.supervise" in cmd):
            caps += rss
        elif p.info["pid"] in tree:
            dag += rss
    return dag, caps


def run_load(
    n: int, home: Path, from_home: Path, postgres_db: str | None = None, timeout_s: float = 3600, log=print
) -> dict:
    import dagster as dg

    root = prepare_home(home, from_home, postgres_db)
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "IV_STORAGE_ROOT": str(root),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    os.environ.update({"DAGSTER_HOME": str(home), "IV_STORAGE_ROOT": str(root)})
    instance = dg.DagsterInstance.from_config(str(home))
    if postgres_db:  # pool limits set ahead: Dagster's lazy creation races on PostgreSQL (iv_app/pools.py)
        from iv_app.definitions import defs
        from iv_app.pools import init_pool_limits

        log(f"[load] pool limits: {init_pool_limits(instance, defs)}")
    staging = Path(tempfile.mkdtemp(dir=home))
    for i in range(n):
        (staging / f"load-{i:02d}.yaml").write_text(request_text(i))
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=open(home / "daemon.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    peak_dag = peak_caps = 0.0
    t_drop = time.time()
    for p in sorted(staging.iterdir()):  # all at once: a rename each
        p.rename(root / "drop" / p.name)
    log(f"[load] N={n}: {n} requests dropped; daemon pid {daemon.pid}")
    done: dict[str, dg.DagsterRun] = {}
    try:
        deadline = time.monotonic() + timeout_s
        last = -1
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode}); see {home / 'daemon.log'}")
            d, c = _rss_mib(daemon.pid, home)
            peak_dag, peak_caps = max(peak_dag, d), max(peak_caps, c)
            runs = instance.get_runs(dg.RunsFilter(job_name="dac_lifecycle_job"))
            done = {r.run_id: r for r in runs if r.is_finished}
            if len(done) != last:
                last = len(done)
                log(
                    f"[load] N={n}: {len(done)}/{n} runs finished, {len(runs) - len(done)} queued or running ({time.time() - t_drop:.0f} s)"
                )
            if len(done) >= n:
                break
            time.sleep(2)
        else:
            log(f"[load] N={n}: timed out after {timeout_s:.0f} s")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    wall = time.time() - t_drop
    out = {
        "n": n,
        "wall_s": round(wall, 1),
        "peak_dagster_rss_mib": round(peak_dag),
        "peak_capsules_rss_mib": round(peak_caps),
    }
    out |= check(instance, root, list(done.values()), n, t_drop)
    from iv_pipelines.deploy.targets import LocalDeployer
    from iv_pipelines.storage import StorageLayout

    dep = LocalDeployer(StorageLayout(root).deployments_dir())
    for dac in StorageLayout(root).deployed_dacs():
        dep.stop(dac)
    return out


def _overlap(a: dict, b: dict) -> bool:
    """Whether two finished runs ({start, end}) ran at the same time."""
    return (
        None not in (a["start"], a["end"], b["start"], b["end"])
        and a["start"] < b["end"]
        and b["start"] < a["end"]
    )


def check(instance, root: Path, runs: list, n: int, t_drop: float) -> dict:
    """What must hold after N dropped requests, with the evidence of each."""
    import dagster as dg

    from iv_pipelines.ledger.sync import sync_all
    from iv_pipelines.storage import StorageLayout
    from resources.ledger import LedgerResource
    from resources.proof import ProofResource

    layout = StorageLayout(root)
    records = {
        r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(job_name="dac_lifecycle_job"))
    }
    per = []
    for run in runs:
        rec = records[run.run_id]
        per.append(
            {
                "dac_id": run.tags.get("dagster/partition"),
                "status": run.status.value,
                "start": rec.start_time,
                "end": rec.end_time,
                "deployed_s": round(rec.end_time - t_drop, 1) if rec.end_time else None,
            }
        )
    problems = []
    ok = [p for p in per if p["status"] == "SUCCESS"]
    from iv_app.definitions import defs

    # the pool of each lifecycle step that names one (limit 1 each in dagster.local.yaml)
    pools = {
        name: node.definition.pool
        for name, node in defs.resolve_job_def("dac_lifecycle_job").graph.node_dict.items()
        if node.definition.pool
    }
    # one pass over each run's events: gate stops (a run a blocking check stopped is the
    # product deciding, reported apart from load failures), pool step spans, lock errors
    gates, locked = {}, []
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for run in runs:
        started = {}
        for e in instance.all_logs(run.run_id):
            ev = e.dagster_event
            kind = ev.event_type_value if ev is not None else None
            if kind == "ASSET_CHECK_EVALUATION" and not ev.event_specific_data.passed:
                data = ev.event_specific_data
                gates[run.tags.get("dagster/partition")] = f"{data.check_name}: {data.description}"
            if e.step_key in pools and kind == "STEP_START":
                started[e.step_key] = e.timestamp
            elif e.step_key in started and kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                spans.setdefault(pools[e.step_key], []).append(
                    (started.pop(e.step_key), e.timestamp, run.run_id)
                )
            text = (e.user_message or "") + (
                str(ev.event_specific_data) if ev and ev.event_specific_data else ""
            )
            if "database is locked" in text.lower() and run.run_id not in locked:
                locked.append(run.run_id)
    other = [p for p in per if p["status"] != "SUCCESS" and p["dac_id"] not in gates]
    if other:
        problems.append(f"{len(other)} runs failed outside a gate: {other}")
    if len(per) < n:
        problems.append(f"{n - len(per)} of {n} requests never finished a run")
    deployed = sorted(p["dac_id"] for p in ok)
    dacs = sorted({p["dac_id"] for p in per})
    pairs = [(a, b) for i, a in enumerate(per) for b in per[i + 1 :] if _overlap(a, b)]
    if len(dacs) != len(per):
        problems.append("two runs for one partition")
    problems += [f"two runs of {a['dac_id']} overlapped" for a, b in pairs if a["dac_id"] == b["dac_id"]]
    pool_overlaps = []
    for pool, sp in spans.items():
        sp.sort()
        pool_overlaps += [
            f"{pool}: {a[2][:8]} and {b[2][:8]}" for a, b in zip(sp, sp[1:], strict=False) if b[0] < a[1]
        ]
    if pool_overlaps:
        problems.append(f"steps of one pool overlapped: {pool_overlaps}")
    overlapping_runs = len(pairs)
    if locked:
        problems.append(f"'database is locked' in runs {locked}")
    missing_pkg = [d for d in deployed if layout.current_package(d) is None]
    not_deployed = [d for d in deployed if not (layout.deployment(d) or {}).get("url")]
    os.environ.setdefault("DAGSTER_HOME", str(root.parent))
    synced = {r.dac_id: r for r in sync_all(root, LedgerResource().get(), ProofResource().trusted_key())}
    not_on_ledger = [d for d in deployed if d not in synced or not synced[d].ok]
    from iv_pipelines.atlas.engine import LadybugAtlas

    atlas = LadybugAtlas(layout.atlas_dir() / "graph")
    try:
        no_atlas_state = [d for d in deployed if not atlas.trajectory(f"dac:{d}")]
    finally:
        atlas.close()
    for what, bad in (
        ("no package", missing_pkg),
        ("not deployed", not_deployed),
        ("not registered or not re-verified on the ledger", not_on_ledger),
        ("no energy state in the Atlas", no_atlas_state),
    ):
        if bad:
            problems.append(f"{what}: {bad}")
    times = sorted(p["deployed_s"] for p in ok)
    return {
        "completed": len(ok),
        "dacs": dacs,
        "deployed": deployed,
        "stopped_at_gate": gates,
        "p50_deployed_s": statistics.median(times) if times else None,
        "p95_deployed_s": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] if times else None,
        "overlapping_run_pairs": overlapping_runs,
        "pool_steps": {k: len(v) for k, v in spans.items()},
        "ledger_verified": sum(1 for d in deployed if d in synced and synced[d].ok),
        "atlas_states": len(deployed) - len(no_atlas_state),
        "problems": problems,
        "runs": per,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1,5,20", help="comma-separated N; 1 is measured first for the ratio")
    ap.add_argument("--from-home", type=Path, default=REPO / ".dagster_home" / "iv")
    ap.add_argument(
        "--postgres", action="store_true", help="Dagster storage in PostgreSQL (DAGSTER_PG_* env)"
    )
    ap.add_argument("--pg-db", help="with --postgres: use this existing database (one N only)")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep it")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if args.postgres:  # the server `make test` starts, unless told otherwise
        for k, v in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432"}.items():
            os.environ.setdefault(k, v)
    ns = sorted({int(x) for x in args.n.split(",")})
    base = args.keep or Path(tempfile.mkdtemp(prefix="iv-load-"))
    results = []
    for n in ns:
        db = None
        if args.postgres and args.pg_db:
            if len(ns) > 1:
                raise SystemExit("--pg-db takes one N (each N needs an empty database)")
            db = args.pg_db
        elif args.postgres:
            db = f"iv_load_{n}"
            import psycopg2

            con = psycopg2.connect(
                dbname="postgres",
                user=os.environ["DAGSTER_PG_USERNAME"],
                password=os.environ["DAGSTER_PG_PASSWORD"],
                host=os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
                port=os.environ.get("DAGSTER_PG_PORT", "5432"),
            )
            con.autocommit = True
            con.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            con.cursor().execute(f"CREATE DATABASE {db}")
            con.close()
        r = run_load(n, base / f"n{n}", args.from_home.resolve(), db, args.timeout)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "runs"}))
    single = next((r for r in results if r["n"] == 1), None)
    storage = "PostgreSQL" if args.postgres else "SQLite"
    print(
        "\n| N | storage | deployed | DACs/hour | p50 / p95 request -> deployed (s) | wall (s) | N x single (s) | ratio | peak RSS Dagster / capsules (MiB) | load problems (and gate stops) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        base_s = r["n"] * single["wall_s"] if single else None
        ratio = f"{r['wall_s'] / base_s:.2f}x" if base_s else "-"
        print(
            f"| {r['n']} | {storage} | {r['completed']}/{r['n']} | {3600 * r['completed'] / r['wall_s']:.0f} | "
            f"{r['p50_deployed_s']} / {r['p95_deployed_s']} | {r['wall_s']:.0f} | "
            f"{base_s if base_s is None else round(base_s)} | {ratio} | "
            f"{r['peak_dagster_rss_mib']} / {r['peak_capsules_rss_mib']} | {'; '.join(r['problems']) or 'none'}"
            + (
                f"; stopped by a gate (a product decision): {r['stopped_at_gate']}"
                if r["stopped_at_gate"]
                else ""
            )
            + " |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
