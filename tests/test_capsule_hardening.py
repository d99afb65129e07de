"""Issue #14, capsule runtime: hostile input gets a 4xx naming the problem, never a 500 and
never unbounded work; every response is counted; the package is checked against its
attestation before it is served; the packaged code runs on its own."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROW = ",".join(["40"] * 64)


@pytest.fixture(scope="module")
def served(small_package):
    from fastapi.testclient import TestClient

    from iv_pipelines.runtime.app import create_app

    _root, _key, pkg, _ = small_package
    with TestClient(create_app(pkg.directory), raise_server_exceptions=False) as c:
        for _ in range(200):
            if c.get("/readyz").status_code == 200:
                break
            import time

            time.sleep(0.05)
        yield c, pkg


def _metric(client, route: str, status: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if (
            line.startswith("capsule_requests_total{")
            and f'route="{route}"' in line
            and f'status="{status}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_r1_an_overlong_csi_line_is_a_422_naming_it(served):
    client, _ = served
    r = client.post("/v1/predict", json={"lines": ["CSI_DATA," + "1," * 70_000]})
    assert r.status_code == 422, r.text
    assert "lines.0" in r.text and "16384" in r.text


def test_r2_huge_iq_values_are_a_422_not_an_overflow(served):
    client, _ = served
    frames = [{"t_s": i / 100, "iq": [2**63] + [0] * 127} for i in range(150)]
    r = client.post("/v1/predict", json={"frames": frames})
    assert r.status_code == 422 and "frames.0.iq.0" in r.text


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_r3_non_finite_times_are_a_422(served, bad):
    client, _ = served
    frames = [{"t_s": i / 100, "iq": [1] * 128} for i in range(150)]
    body = json.dumps({"frames": frames}).replace('"t_s": 0.05', f'"t_s": {bad}', 1)
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "frames.5.t_s" in r.text and "finite" in r.text


def test_r4_a_request_beyond_the_packages_limits_is_a_413_naming_the_limit(served):
    client, pkg = served
    limits = json.loads((pkg.directory / "runtime.json").read_text())["limits"]
    # 1,000 frames 0.49 s apart at hop_s 0.1: the amplification request
    frames = [{"t_s": i * 0.49, "iq": [3] * 128} for i in range(1000)]
    r = client.post("/v1/predict", json={"frames": frames, "hop_s": 0.1})
    assert r.status_code == 413, r.text
    assert f"at most {limits['max_windows']}" in r.text or f"at most {limits['max_frames']}" in r.text
    too_many = client.post(
        "/v1/predict", json={"amplitude_csv": [ROW] * (limits["max_frames"] + 1), "rate_hz": 100}
    )
    assert (
        too_many.status_code == 413 and f"at most {limits['max_frames']} frames per request" in too_many.text
    )
    ok = client.post("/v1/predict", json={"amplitude_csv": [ROW] * 300, "rate_hz": 100})
    assert ok.status_code == 200


def test_r4_a_full_queue_is_a_429_with_retry_after():
    import asyncio

    from iv_pipelines.runtime.limits import InferenceGate, Overloaded

    async def scenario():
        gate = InferenceGate(concurrency=1, queue_depth=1)
        release = asyncio.Event()
        entered = []

        async def hold():
            async with gate.slot():
                entered.append(1)
                await release.wait()

        a, b = asyncio.create_task(hold()), asyncio.create_task(hold())
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="at most 1 \\+ 1 queued"):
            async with gate.slot():
                entered.append("a third, over the queue")  # never reached
        release.set()
        await asyncio.gather(a, b)
        async with gate.slot():  # room again
            return len(entered)

    assert asyncio.run(scenario()) == 2


def test_r5_stream_binary_frames_and_oversized_chunks_are_refused_and_the_stream_goes_on(
    served, episode_lines
):
    client, pkg = served
    limits = json.loads((pkg.directory / "runtime.json").read_text())["limits"]
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(b"\x00\x01binary")
        assert "binary messages" in ws.receive_json()["error"]
        ws.send_text(json.dumps({"amplitude_csv": [ROW] * (limits["max_frames"] + 1), "rate_hz": 100}))
        assert f"at most {limits['max_frames']}" in ws.receive_json()["error"]
        ws.send_text("CSI_DATA," + "9," * 20_000)
        assert "16384" in ws.receive_json()["error"]
        ws.send_text("\n".join(episode_lines))  # then real CSI: detections come
        det = ws.receive_json()
        assert det["error"] is None and det["label"] in ("empty", "walk", "sit", "fall")


def test_r6_metrics_count_4xx_and_5xx_and_an_unexpected_error_is_a_json_500(served, monkeypatch):
    client, _ = served
    before = _metric(client, "/v1/predict", "422")
    client.post("/v1/predict", json={})
    assert _metric(client, "/v1/predict", "422") == before + 1
    state = client.app.state.capsule

    def boom(_x):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(state.predictor, "proba", boom)
    r = client.post("/v1/predict", json={"amplitude_csv": [ROW] * 250, "rate_hz": 100})
    assert r.status_code == 500 and r.json() == {"detail": ["internal error (logged by the capsule)"]}
    assert "simulated bug" not in r.text  # no internals leak
    assert _metric(client, "/v1/predict", "500") >= 1
    monkeypatch.undo()
    assert client.get("/healthz").status_code == 200  # still serving


def test_the_contract_says_exactly_one_source_of_csi():
    """schemathesis found `{"frames": [], "lines": []}` schema-valid but refused: the schema now
    says it (oneOf), so a client learns it from the contract."""
    import jsonschema

    from iv_pipelines.runtime.app import create_app

    spec = create_app().openapi()
    schema = spec["components"]["schemas"]["PredictRequest"] | {"components": spec["components"]}
    schema = json.loads(json.dumps(schema).replace("#/components/schemas/", "#/components/schemas/"))
    v = jsonschema.Draft202012Validator(schema)
    assert not v.is_valid({"frames": [], "lines": []})
    assert not v.is_valid({})
    assert v.is_valid({"lines": ["CSI_DATA"]})


def test_a_package_altered_after_packaging_is_never_served(small_package, tmp_path):
    from fastapi.testclient import TestClient

    from iv_pipelines.runtime.app import create_app

    _root, _key, pkg, _ = small_package
    copy = tmp_path / pkg.directory.parent.name / pkg.version
    shutil.copytree(pkg.directory, copy)
    att = pkg.attestation
    shutil.copyfile(att, copy.parent / att.name)
    thr = json.loads((copy / "runtime.json").read_text())
    thr["decision"]["fall_threshold"] = 0.99  # someone silences the fall alarm
    (copy / "runtime.json").write_text(json.dumps(thr))
    with TestClient(create_app(copy)) as c:
        for _ in range(200):
            body = c.get("/readyz").json()
            if body["status"] != "loading":
                break
            import time

            time.sleep(0.05)
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "runtime.json: sha256 differs from the attestation" in r.json()["error"]
        assert c.post("/v1/predict", json={"amplitude_csv": [ROW] * 250, "rate_hz": 100}).status_code == 503


def test_the_untouched_package_is_served_verified(served):
    client, _ = served
    body = client.get("/readyz").json()
    assert body["ready"] and body["attestation"].startswith("verified: ")


def test_the_packaged_capsule_runs_on_its_own_sources(small_package, tmp_path):
    """The package's src/ holds every module the capsule imports: loaded with only src/ on the
    path (as in its container), nothing comes from the factory's checkout — and it serves: a
    prediction, logged with its raw CSI in the inference log, and feedback on it (the lazy
    imports of those routes run too). Its runtime.json is given a fall-intensity check with a
    stillness factor, so the modules the DAC's decision reads are imported too (a copy: it
    loads unverified)."""
    import shutil

    _root, _key, small, _ = small_package
    pkg_dir = tmp_path / "pkg"
    shutil.copytree(small.directory, pkg_dir)
    doc = json.loads((pkg_dir / "runtime.json").read_text())
    doc["decision"] = doc.get("decision", {}) | {
        "intensity_check": {"reference": 0.05, "factor": 0.5, "still_factor": 1.0}
    }
    (pkg_dir / "runtime.json").write_text(json.dumps(doc))
    code = (
        "import json, sys, time\n"
        "from fastapi.testclient import TestClient\n"
        "from iv_pipelines.runtime.app import create_app\n"
        "lines = json.loads(open(sys.argv[2]).read())\n"
        "with TestClient(create_app(sys.argv[1])) as c:\n"
        "    while c.get('/readyz').status_code != 200: time.sleep(0.05)\n"
        "    r = c.post('/v1/predict', json={'lines': lines, 'device_id': 'esp'})\n"
        "    assert r.status_code == 200, r.text\n"
        "    wid = r.json()['windows'][0]['window_id']\n"
        "    r = c.post('/v1/feedback', json={'window_id': wid, 'label': 'fall'})\n"
        "    assert r.status_code == 200, r.text\n"
        "mods = [m.__file__ for n, m in sys.modules.items() if n.startswith('iv_pipelines') and getattr(m, '__file__', None)]\n"
        "print('\\n'.join(mods))\n"
    )
    import os

    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    e = simulate_episode(Room.random(np.random.default_rng(5)), "fall", seed=1, duration_s=3.0)
    (tmp_path / "lines.json").write_text(json.dumps(write_esp_csi_lines(e.csi, e.t_s)))
    env = os.environ | {
        "PYTHONPATH": str(pkg_dir / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "IV_INFERENCE_LOG_DIR": str(tmp_path / "log"),
        "IV_INFERENCE_LOG_RETENTION": "raw",
        "IV_INFERENCE_LOG_SAMPLE": "1",
    }
    r = subprocess.run(
        [sys.executable, "-P", "-c", code, str(pkg_dir), str(tmp_path / "lines.json")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    files = r.stdout.split()
    outside = [f for f in files if not f.startswith(str(pkg_dir / "src"))]
    assert files and not outside, outside
    assert any(f.endswith("runtime/inference_log.py") for f in files)
    rec = json.loads((tmp_path / "log" / "log-1.jsonl").read_text().splitlines()[0])
    assert rec["raw_int8"] and len(rec["raw_t_ms"]) > 100 and rec["device_id"] == "esp"
    assert json.loads((tmp_path / "log" / "feedback.jsonl").read_text())["label"] == "fall"


@pytest.fixture(scope="module")
def episode_lines():
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    e = simulate_episode(Room.random(np.random.default_rng(5)), "walk", seed=11, duration_s=3.5)
    return write_esp_csi_lines(e.csi, e.t_s)


def test_r6_after_a_500_the_same_keep_alive_connection_still_answers(served, monkeypatch):
    """Served by uvicorn (not the test client): one HTTP/1.1 connection, a request that hits an
    unexpected error, then a normal request on the same connection."""
    import http.client
    import socket
    import threading
    import time

    import uvicorn

    client, _ = served
    state = client.app.state.capsule
    calls = {"n": 0}
    real = state.predictor.proba

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated bug")
        return real(x)

    monkeypatch.setattr(state.predictor, "proba", flaky)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(client.app, host="127.0.0.1", port=port, lifespan="off", log_level="critical")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"amplitude_csv": [ROW] * 250, "rate_hz": 100})
        conn.request("POST", "/v1/predict", body, {"content-type": "application/json"})
        r1 = conn.getresponse()
        assert r1.status == 500 and json.loads(r1.read())["detail"] == [
            "internal error (logged by the capsule)"
        ]
        assert r1.getheader("connection") != "close"
        conn.request("POST", "/v1/predict", body, {"content-type": "application/json"})  # same socket
        r2 = conn.getresponse()
        assert r2.status == 200 and json.loads(r2.read())["windows"]
        conn.close()
    finally:
        server.should_exit = True
        th.join(timeout=10)


def test_a_package_without_its_attestation_loads_as_a_library_but_a_deployed_capsule_refuses(
    small_package, tmp_path, monkeypatch
):
    """An evaluation script that unpacks a package elsewhere can still load it (unverified, with
    a warning); a deployed capsule (IV_CAPSULE_REQUIRE_ATTESTATION=1, set by the deployers,
    the Dockerfile and the Kubernetes Deployment) refuses to serve it."""
    from iv_pipelines.runtime.attest import AttestationError
    from iv_pipelines.runtime.predictor import Predictor

    _root, _key, pkg, _ = small_package
    copy = tmp_path / "unpacked" / pkg.version
    shutil.copytree(pkg.directory, copy)
    monkeypatch.delenv("IV_CAPSULE_REQUIRE_ATTESTATION", raising=False)
    with pytest.warns(UserWarning, match="unverified package"):
        p = Predictor(copy)
    assert p.attestation["verified"] is False and "no attestation" in p.attestation["reason"]
    monkeypatch.setenv("IV_CAPSULE_REQUIRE_ATTESTATION", "1")
    with pytest.raises(AttestationError, match="no attestation to verify the package against"):
        Predictor(copy)
    from iv_pipelines.deploy.supervise import capsule_command

    monkeypatch.delenv("IV_CAPSULE_REQUIRE_ATTESTATION")
    assert capsule_command(str(copy), 8080, 1)[1]["IV_CAPSULE_REQUIRE_ATTESTATION"] == "1"
