import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Triton kernels run in the interpreter on CPU; this must be set before triton is imported.
# bench/gpu_check.sh sets TRITON_INTERPRET=0 to compile them on a GPU.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "iv"
    root.mkdir()
    return root


@pytest.fixture
def storage(storage_root: Path):
    from resources.storage import FactoryStorage

    return FactoryStorage(root_dir=str(storage_root))


SAMPLE_REQUEST = REPO / "examples" / "requests" / "fall-detection-acme.yaml"


def plain_sample_request_text() -> str:
    """The sample request without its calibration captures (whose paths are relative to
    examples/requests/): for tests of intake, discovery and packaging that do not calibrate."""
    lines = SAMPLE_REQUEST.read_text().splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.startswith("calibration:"):
            skipping = True
            continue
        if skipping and line.startswith("  "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


@pytest.fixture
def sample_request_text() -> str:
    return plain_sample_request_text()


@pytest.fixture(scope="session")
def embedder():
    from resources.discovery import EmbedderResource

    return EmbedderResource().get()


@pytest.fixture(scope="session")
def calibrated(embedder):
    """The default calibration, built once per test session (about 20-30 s on 2 cores)."""
    import yaml

    from iv_pipelines.scoring.calibration import build_calibration
    from iv_pipelines.scoring.scorer import ObmiScorer

    positives = yaml.safe_load((REPO / "iv_pipelines" / "data" / "positive_hypotheses.yaml").read_text())
    return build_calibration(ObmiScorer(embedder), positives, seed=0)


PG = {
    "DAGSTER_PG_USERNAME": os.environ.get("IV_TEST_PG_USER", "iv_test"),
    "DAGSTER_PG_PASSWORD": os.environ.get("IV_TEST_PG_PASSWORD", "iv_test"),
    "DAGSTER_PG_HOST": os.environ.get("IV_TEST_PG_HOST", "127.0.0.1"),
    "DAGSTER_PG_PORT": os.environ.get("IV_TEST_PG_PORT", "5432"),
}


def pg_connect(db: str):
    import psycopg2

    return psycopg2.connect(
        dbname=db,
        user=PG["DAGSTER_PG_USERNAME"],
        password=PG["DAGSTER_PG_PASSWORD"],
        host=PG["DAGSTER_PG_HOST"],
        port=int(PG["DAGSTER_PG_PORT"]),
        connect_timeout=3,
    )


@pytest.fixture
def pg_database():
    try:
        admin = pg_connect("postgres")
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable ({exc}); run scripts/ensure_postgres.sh")
    admin.autocommit = True
    name = f"iv_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_url(db: str) -> str:
    return (
        f"postgresql+psycopg2://{PG['DAGSTER_PG_USERNAME']}:{PG['DAGSTER_PG_PASSWORD']}@"
        f"{PG['DAGSTER_PG_HOST']}:{PG['DAGSTER_PG_PORT']}/{db}"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh database URL for a SQLAlchemy-backed store, once on SQLite and once on the
    PostgreSQL `make test` starts (prod runs the ACE memory and ASI registry on PostgreSQL):
    the same suite runs on both."""
    if request.param == "sqlite":
        (tmp_path / "db").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path / 'db' / 'store.sqlite'}"
    else:
        yield pg_url(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="module")
def sample_request_text_module() -> str:
    return plain_sample_request_text()


@pytest.fixture
def proof_env(storage, tmp_path):
    """Factory for the proof-phase asset tests: a `validated_hypothesis` stub that writes a
    passing validation record, an ephemeral instance with the given `dac` partitions, and
    storage/proof/ledger resources under tmp_path. Returns (stub, instance, resources)."""
    import dagster as dg

    from defs.common import dac_partitions
    from resources.ledger import LedgerResource
    from resources.proof import ProofResource

    def make(partitions=("acme",), zk=True, **ledger):
        @dg.asset(name="validated_hypothesis", partitions_def=dac_partitions)
        def validated_stub(context):
            out = storage.dac_dir(context.partition_key) / "validated_hypothesis.json"
            out.write_text('{"validation_score": 0.97, "threshold": 0.95}\n')

        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(dac_partitions.name, list(partitions))
        resources = {
            "storage": storage,
            "proof": ProofResource(keys_dir=str(tmp_path / "keys"), zk=zk),
            "ledger": LedgerResource(state_dir=str(tmp_path / "ledger"), **ledger),
        }
        return validated_stub, instance, resources

    return make


@pytest.fixture(scope="session")
def small_package(tmp_path_factory):
    """(storage root, signing key, Package, Decision) for a small real DAC, built once."""
    from iv_app.sample import make_small_dac
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key

    root = tmp_path_factory.mktemp("pkg") / "iv"
    root.mkdir()
    key = load_or_create_signing_key(root.parent / "keys")
    make_small_dac(root, key)
    energy = {"E_state": 12.5, "dE_dt": 3.1, "S_state": 0.6, "method": "test fixture"}
    pkg, decision, _ = build_dac_package(root, "fall-detection-acme", key, key.public, energy, "run-1", [])
    return root, key, pkg, decision


def materialized(result, asset: str | None = None) -> dict:
    """Metadata values of the first materialization in `result` (of `asset`, if given)."""
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if asset is None or mat.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {asset or 'any asset'} in the run")


@pytest.fixture(scope="session")
def default_base_model(tmp_path_factory):
    """(materialize result, storage root) of the default wifi-sensing base model, built once
    per session with the default budget (the one `make demo` trains; several minutes)."""
    import dagster as dg

    from defs.training import wifi_sensing_base_model
    from resources.sensing import SensingResource
    from resources.storage import FactoryStorage

    root = tmp_path_factory.mktemp("sensing")
    from resources.training import GpuStepResource

    resources = {
        "storage": FactoryStorage(root_dir=str(root)),
        "sensing": SensingResource(),
        "gpu_steps": GpuStepResource(),  # in-process
    }
    base = dg.materialize(
        [wifi_sensing_base_model], resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    assert base.success
    return base, root


def lifecycle_home(home: Path, default_base_model, calibrated, min_accuracy: float = 0.7, **request_fields):
    """A Dagster home as `make demo` leaves one, ready for lifecycle runs: the shared assets
    built (the session's base model and score calibration copied in), the sample request stored
    without its calibration captures — an uncalibrated client, whose measured accuracy (about
    0.82 on its simulated room) the lifecycle rightly refuses under the sample's min_accuracy
    0.95, so the request asks `min_accuracy` instead (and `request_fields` on top). Returns
    (StorageLayout, request)."""
    import json
    import shutil

    from iv_pipelines.intake import RequestStore
    from iv_pipelines.request import parse_request_text
    from iv_pipelines.storage import StorageLayout

    layout = StorageLayout(home / "iv")
    layout.ensure()
    shutil.copytree(StorageLayout(default_base_model[1]).base_model_dir(), layout.base_model_dir())
    cal, report = calibrated
    cal.save(layout.score_calibration_file())
    layout.score_calibration_file().with_suffix(".report.json").write_text(json.dumps(report.to_dict()))
    req = parse_request_text(plain_sample_request_text())
    req = req.model_copy(
        update={"constraints": req.constraints.model_copy(update={"min_accuracy": min_accuracy})}
        | request_fields
    )
    RequestStore(layout.root).put(req)
    return layout, req


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through playwright (skips where playwright is missing)."""
    pw = pytest.importorskip("playwright.sync_api")
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, url, viewport=None):
    """A new page at `url`, and the list its console errors and page errors go to."""
    page = browser.new_page(viewport=viewport) if viewport else browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def serve_in_thread(app):
    """Serve an ASGI app with uvicorn on a free loopback port, in a daemon thread:
    (server, thread, base URL); stop it with `server.should_exit = True`."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, t, f"http://127.0.0.1:{port}"


# the smallest sensing budget that still runs every step (tests of wiring, not of accuracy)
TINY_SENSING = {
    "pretrain_rooms": 8,
    "pretrain_episodes_per_activity": 2,
    "pretrain_epochs": 1,
    "eval_rooms": 2,
    "sim_workers": 1,
    "lora_episodes_per_activity": 2,
    "lora_eval_episodes_per_activity": 2,
    "lora_epochs": 1,
}


def tiny_home(root):
    """A storage root with a tiny base model and the plain sample request stored: (storage,
    sensing, request)."""
    from defs.training import pretrain_base_model
    from iv_pipelines.request import parse_request_text
    from resources.sensing import SensingResource
    from resources.storage import FactoryStorage

    tiny = SensingResource(**TINY_SENSING, real_data_dir=str(root.parent / "no-real-captures"))
    storage = FactoryStorage(root_dir=str(root))
    pretrain_base_model(tiny, storage.layout)  # a tiny base model, in-process
    req = parse_request_text(plain_sample_request_text())
    storage.requests().put(req)
    return storage, tiny, req


def materialize_to_adapter(storage, sensing, req, gpu_steps):
    """`dac_request` -> `shadow_twin_context` -> `lora_adapter` for `req` (the discovery gate
    stubbed: it is tested elsewhere), on a fresh ephemeral instance."""
    import dagster as dg

    from defs.discovery import dac_request, shadow_twin_context
    from defs.training import lora_adapter

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("dac", [req.dac_id])

    @dg.asset(name="validated_hypothesis", partitions_def=dac_request.partitions_def)
    def validated_stub():
        return None

    return dg.materialize(
        [dac_request, shadow_twin_context, validated_stub, lora_adapter],
        partition_key=req.dac_id,
        resources={"storage": storage, "sensing": sensing, "gpu_steps": gpu_steps},
        instance=instance,
        raise_on_error=False,
    )


def empty_room_opened_by_walking():
    """A twin device's "empty room" capture whose first 3 s hold someone walking out (a
    caregiver still leaving), and a plain empty capture of the same room: ((csi, t), (csi, t))."""
    import numpy as np

    from iv_pipelines.sensing.device import Device
    from iv_pipelines.sensing.twin import RESIDENTS, Room, simulate_episode

    room = Room.random(np.random.default_rng(11))
    dev = Device(rate_hz=100, snr_db=35, motion_noise=0.003, body_gain=6.0)
    walk = simulate_episode(room, "walk", 3, 3.0, dev, RESIDENTS["adult"], variant="walking")
    empty = simulate_episode(room, "empty", 4, 12.0, dev, RESIDENTS["adult"])
    opened = (
        np.concatenate([walk.csi, empty.csi]),
        np.concatenate([walk.t_s, empty.t_s + walk.t_s[-1] + 0.01]),
    )
    return opened, (empty.csi, empty.t_s)
