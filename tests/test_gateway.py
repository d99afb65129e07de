"""The gateway's isolation, route by route: a client sees its own DACs, pins, proofs, theme and
streams; another client's are 404s (indistinguishable from nothing), unknown/revoked/malformed
keys are 401s with no detail, stream tokens expire, invalid tokens close with 1008."""

import json

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from iv_pipelines.gateway.app import create_gateway_app
from iv_pipelines.gateway.keys import ApiKeys
from iv_pipelines.storage import StorageLayout
from tests.conftest import REPO

DACS = {"acme-healthcare": ["fall-a1", "fall-a2"], "globex": ["fall-g1"]}


@pytest.fixture
def gw(tmp_path):
    from iv_pipelines.edge.forward import DetectionStream

    layout = StorageLayout(tmp_path / "iv")
    for client, dacs in DACS.items():
        for d in dacs:
            layout.dac_dir(d)
            layout.dac_request_file(d).write_text(
                json.dumps({"dac_id": d, "client_id": client, "domain": "wifi-sensing"})
            )
            layout.pin_file(d).parent.mkdir(parents=True, exist_ok=True)
            layout.pin_file(d).write_text(json.dumps({"dac_id": d, "status": "serving", "client": client}))
            layout.lineage_dir(d).mkdir(parents=True)
            (layout.lineage_dir(d) / "registration.json").write_text(
                json.dumps({"utid": f"utid:{d}", "digest": "ab"})
            )
            (layout.lineage_dir(d) / "lineage.json").write_text(json.dumps({"merkle": {"root": f"root-{d}"}}))
    keys = ApiKeys(layout.root / "gateway")
    a = keys.create("acme-healthcare")[1]
    b = keys.create("globex")[1]
    rid, revoked = keys.create("acme-healthcare")
    keys.revoke(rid)
    themes = tmp_path / "themes"
    themes.mkdir()
    for name in ("healthcare", "manufacturing"):
        (themes / f"{name}.yaml").write_text((REPO / "examples" / "themes" / f"{name}.yaml").read_text())
    stream = DetectionStream()
    app = create_gateway_app(layout.root, [themes], detections=stream, pin_interval_s=0.05)
    return TestClient(app), a, b, revoked, stream


def h(key):
    return {"Authorization": f"Bearer {key}"}


ROUTES = ["/v1/dacs", "/v1/pins", "/v1/theme", "/v1/dacs/fall-a1/proof", "/v1/pins/fall-a1"]


def test_each_client_sees_only_its_own(gw):
    c, a, b, _, _ = gw
    assert [d["dac_id"] for d in c.get("/v1/dacs", headers=h(a)).json()] == ["fall-a1", "fall-a2"]
    assert [d["dac_id"] for d in c.get("/v1/dacs", headers={"X-API-Key": b}).json()] == ["fall-g1"]
    assert {p["dac_id"] for p in c.get("/v1/pins", headers=h(a)).json()} == {"fall-a1", "fall-a2"}
    assert c.get("/v1/dacs/fall-a1/proof", headers=h(a)).json()["merkle_root"] == "root-fall-a1"
    assert c.get("/v1/theme", headers=h(a)).json()["client_id"] == "acme-healthcare"
    assert c.get("/v1/theme", headers=h(b)).json()["client_id"] == "globex"
    for route in ("/v1/dacs/fall-a1/proof", "/v1/pins/fall-a1"):  # A's things, asked by B
        r = c.get(route, headers=h(b))
        assert (
            r.status_code == 404 and r.json() == c.get(route.replace("fall-a1", "nope"), headers=h(b)).json()
        )


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("who", ["none", "unknown", "malformed", "revoked", "wrong-secret"])
def test_every_route_refuses_bad_keys_without_detail(gw, route, who):
    c, a, _, revoked, _ = gw
    key = {
        "none": None,
        "unknown": "ivk_000000000000_x",
        "malformed": "hello",
        "revoked": revoked,
        "wrong-secret": a[:-2] + "zz",
    }[who]
    r = c.get(route, headers=h(key) if key else {})
    assert r.status_code == 401 and r.json() == {"detail": "unauthorized"}
    assert c.post("/v1/stream-token", headers=h(key) if key else {}).status_code == 401


def test_streams_need_a_fresh_token_and_carry_only_the_clients_dacs(gw):
    from iv_pipelines.edge.forward import DeviceDetection

    c, a, b, _, stream = gw
    tok_a = c.post("/v1/stream-token", headers=h(a)).json()["token"]
    tok_b = c.post("/v1/stream-token", headers=h(b)).json()["token"]
    with c.websocket_connect(f"/v1/streams/pins?token={tok_b}") as ws:
        assert [p["dac_id"] for p in ws.receive_json()["pins"]] == ["fall-g1"]
    for bad in ("", "garbage", tok_a[:-3] + "AAA", a):  # not a token, tampered, a key in the URL
        with (
            pytest.raises(WebSocketDisconnect) as e,
            c.websocket_connect(f"/v1/streams/pins?token={bad}") as ws,
        ):
            ws.receive_json()
        assert e.value.code == 1008
    with c.websocket_connect(f"/v1/streams/detections?token={tok_a}") as ws:
        for dac in ("fall-g1", "fall-a2", "fall-g1", "fall-a1"):
            stream.publish(
                DeviceDetection("esp", dac, 1, 2, "fall", 0.9, {"fall": 0.9}, "1.0.0", "simulation_only")
            )
        got = [ws.receive_json()["dac_id"] for _ in range(2)]
    assert got == ["fall-a2", "fall-a1"]


def test_tokens_expire_and_keys_are_stored_hashed(tmp_path):
    keys = ApiKeys(tmp_path / "gateway")
    key_id, key = keys.create("acme-healthcare")
    assert key.split("_", 2)[2] not in (tmp_path / "gateway" / "keys.json").read_text()
    assert (tmp_path / "gateway" / "keys.json").stat().st_mode & 0o777 == 0o600
    tok = keys.stream_token("acme-healthcare", now=1000)
    assert keys.client_for_token(tok, now=1030) == "acme-healthcare"
    assert keys.client_for_token(tok, now=1061) is None  # 60 s later
    assert [k["key_id"] for k in keys.list()] == [key_id]
    with pytest.raises(ValueError):
        keys.create("")


def test_cli_keys(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from iv_app.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("IV_STORAGE_ROOT", raising=False)
    r = CliRunner().invoke(main, ["gateway", "key", "create", "acme-healthcare"])
    assert r.exit_code == 0 and "shown once" in r.output
    key_id, key = r.output.split()[1], r.output.strip().splitlines()[-1]
    keys = ApiKeys(tmp_path / "iv" / "gateway")
    assert keys.client_for(key) == "acme-healthcare"
    assert CliRunner().invoke(main, ["gateway", "key", "revoke", key_id]).exit_code == 0
    assert ApiKeys(tmp_path / "iv" / "gateway").client_for(key) is None
    assert "revoked" in CliRunner().invoke(main, ["gateway", "key", "list"]).output
    r = CliRunner().invoke(main, ["gateway", "key", "revoke", "nope"])
    assert r.exit_code != 0 and "no key 'nope'" in r.output


def test_feedback_is_stored_with_its_csi_window_and_only_for_the_clients_own_device(gw, tmp_path):
    import numpy as np

    from iv_pipelines.edge import csi_data_pb2 as pb
    from iv_pipelines.edge.frames import encode
    from iv_pipelines.edge.ingest import CaptureStore, DeviceKeys, IngestService

    c, a, b, _, _ = gw
    layout = StorageLayout(tmp_path / "iv")
    k = b"k" * 32
    DeviceKeys(layout.edge_devices_file()).add("esp-a", k, dac_id="fall-a1")
    DeviceKeys(layout.edge_devices_file()).add("esp-g", k, dac_id="fall-g1")
    svc = IngestService(
        DeviceKeys(layout.edge_devices_file()), store=CaptureStore(layout.edge_captures_dir())
    )
    raw = np.zeros(128, np.int8).tobytes()
    for seq in range(400):  # 4 s at 100 Hz
        svc.handle(
            encode(pb.CSIData(device_id="esp-a", seq=seq, timestamp_us=seq * 10_000, csi=raw, layout=1), k)
        )
    svc.drain()
    svc.store.close()
    body = {
        "dac_id": "fall-a1",
        "device_id": "esp-a",
        "seq": 300,
        "timestamp_us": 3_000_000,
        "label": "fall",
        "was_fall": False,
    }
    r = c.post("/v1/feedback", headers=h(a), json=body)
    # no window_id (a detection from a capsule that keeps no log): nothing passed on to the capsule
    assert r.status_code == 200 and r.json() == {
        "stored": True,
        "window_frames": 201,
        "capsule_feedback": False,
    }
    [rec] = [json.loads(x) for x in layout.feedback_file("fall-a1").read_text().splitlines()]
    assert rec["was_fall"] is False and rec["label"] == "fall" and rec["client_id"] == "acme-healthcare"
    assert (layout.feedback_windows_dir("fall-a1") / rec["window"]).is_file()
    # another client's DAC, or a device that does not feed this DAC: 404, nothing stored
    assert c.post("/v1/feedback", headers=h(b), json=body).status_code == 404
    assert c.post("/v1/feedback", headers=h(a), json=body | {"device_id": "esp-g"}).status_code == 404
    assert c.post("/v1/feedback", headers=h(a), json=body | {"label": "dance"}).status_code == 422
    assert c.post("/v1/feedback", headers=h(a), content=b"x" * 5000).status_code == 413
    assert c.post("/v1/feedback", json=body).status_code == 401
    assert len(layout.feedback_file("fall-a1").read_text().splitlines()) == 1


class FakeDagster:
    """Stands in for DagsterRuns (the real one is driven against a live webserver in
    tests/test_gateway_live.py): records launches, one active run per DAC."""

    def __init__(self):
        self.launched, self.runs = [], {}

    def launch(self, dac, tags):
        from iv_pipelines.gateway.dagster_runs import RunConflict

        if any(r["tags"]["dagster/partition"] == dac for r in self.runs.values()):
            raise RunConflict(f"run of {dac} is already queued or running")
        run_id = f"{len(self.runs):08d}-0000-0000-0000-000000000000"
        self.launched.append((dac, tags))
        self.runs[run_id] = {
            "run_id": run_id,
            "job": "dac_lifecycle_job",
            "status": "STARTED",
            "tags": {"dagster/partition": dac} | tags,
            "steps_succeeded": 3,
            "steps_failed": 0,
            "steps_total": 12,
        }
        return {"run_id": run_id, "status": "QUEUED"}

    def run(self, run_id):
        return self.runs.get(run_id)


def test_lifecycle_runs_need_the_deploy_scope_and_stay_within_the_client(tmp_path):
    layout = StorageLayout(tmp_path / "iv")
    for client, dacs in DACS.items():
        for d in dacs:
            layout.dac_dir(d)
            layout.dac_request_file(d).write_text(json.dumps({"dac_id": d, "client_id": client}))
    keys = ApiKeys(layout.root / "gateway")
    reader = keys.create("acme-healthcare")[1]
    deployer = keys.create("acme-healthcare", scopes=("deploy",))[1]
    other = keys.create("globex", scopes=("deploy",))[1]
    with pytest.raises(ValueError, match="unknown scope"):
        keys.create("acme-healthcare", scopes=("admin",))
    assert [k["scopes"] for k in keys.list()].count(["deploy"]) == 2

    no_dagster = TestClient(create_gateway_app(layout.root))
    r = no_dagster.post("/v1/dacs/fall-a1/runs", headers=h(deployer))
    assert r.status_code == 503 and "--dagster" in r.json()["detail"]

    fake = FakeDagster()
    c = TestClient(create_gateway_app(layout.root, runs=fake))
    r = c.post("/v1/dacs/fall-a1/runs", headers=h(reader))
    assert r.status_code == 403 and "deploy scope" in r.json()["detail"]
    assert c.post("/v1/dacs/fall-a1/runs", headers=h(other)).status_code == 404  # globex's key, acme's DAC
    assert c.post("/v1/dacs/fall-a1/runs").status_code == 401
    assert fake.launched == []

    r = c.post("/v1/dacs/fall-a1/runs", headers=h(deployer))
    assert r.status_code == 201, r.text
    run_id = r.json()["run_id"]
    assert fake.launched == [("fall-a1", {"iv/launched_by": "gateway", "iv/client": "acme-healthcare"})]
    assert c.post("/v1/dacs/fall-a1/runs", headers=h(deployer)).status_code == 409  # one at a time
    got = c.get(f"/v1/dacs/fall-a1/runs/{run_id}", headers=h(reader)).json()
    assert (got["status"], got["steps_succeeded"], got["steps_total"]) == ("STARTED", 3, 12)
    assert "tags" not in got
    # the run is found only under its own DAC, and never by another client
    for route, key in (
        (f"/v1/dacs/fall-a2/runs/{run_id}", reader),
        (f"/v1/dacs/fall-a1/runs/{run_id}", other),
        ("/v1/dacs/fall-a1/runs/not-a-run-id", reader),
        ("/v1/dacs/fall-a1/runs/99999999-0000-0000-0000-000000000000", reader),
    ):
        assert c.get(route, headers=h(key)).status_code == 404, route


def test_dagster_errors_become_a_503_without_internals(tmp_path):
    from iv_pipelines.gateway.dagster_runs import DagsterRuns

    layout = StorageLayout(tmp_path / "iv")
    layout.dac_dir("fall-a1")
    layout.dac_request_file("fall-a1").write_text(json.dumps({"dac_id": "fall-a1", "client_id": "acme"}))
    key = ApiKeys(layout.root / "gateway").create("acme", scopes=("deploy",))[1]
    # nothing listens on port 9 (discard): the webserver is down
    c = TestClient(
        create_gateway_app(layout.root, runs=DagsterRuns("http://127.0.0.1:9/graphql", timeout_s=2))
    )
    r = c.post("/v1/dacs/fall-a1/runs", headers=h(key))
    assert r.status_code == 503 and "127.0.0.1" not in r.text


def test_static_files_pass_through_no_body_rewrapping_middleware(tmp_path):
    """The gateway's key check is a plain ASGI middleware: Starlette's BaseHTTPMiddleware
    re-streams bodies through a memory pipe, which cut the web components' bundle short of
    its Content-Length now and then (the demo page stayed blank in 2 of 4 CI runs). A large
    static file arrives whole, and /v1/ still needs a key."""
    from starlette.middleware.base import BaseHTTPMiddleware

    static = tmp_path / "static"
    static.mkdir()
    blob = bytes(range(256)) * 8192  # 2 MiB
    (static / "big.js").write_bytes(blob)
    app = create_gateway_app(tmp_path / "iv", [], static_dir=static)
    assert not any(m.cls is BaseHTTPMiddleware for m in app.user_middleware)
    with TestClient(app) as c:
        r = c.get("/static/big.js")
        assert r.status_code == 200 and r.content == blob
        assert int(r.headers["content-length"]) == len(blob)
        assert c.get("/v1/dacs").status_code == 401
