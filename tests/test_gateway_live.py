"""The Capsule Pins against live systems, in Debian's chromium:
- the demo page fed by a running capsule: SIMULATED twin CSI of the client's room streams
  through the edge ingest path into a real local deployment of the DAC; the dashboard shows
  the capsule's detections, the pin raises a fall alert from one, and the caregiver's answer
  (given with the keyboard) is stored with the CSI window the ingest service stored;
- the explorer launches the DAC's lifecycle run in a real Dagster webserver through its
  GraphQL API (keyboard again) and shows it succeed, step by step;
- an accessibility audit (axe-core, in the page, through the shadow roots) of both pages."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, REPO, lifecycle_home, open_page, serve_in_thread

AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) or not (REPO / "web" / "dist" / "iv-components.js").is_file(),
    reason="needs Debian's chromium and the built components (make install)",
)
DAC = "fall-detection-acme"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_serve = serve_in_thread


def _open(browser, url):
    return open_page(browser, url, viewport={"width": 1280, "height": 1000})


def axe_violations(page) -> list[dict]:
    """Serious and critical WCAG violations axe-core finds in the page (shadow roots included)."""
    page.add_script_tag(path=str(AXE))
    res = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in res["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_demo_page_fed_by_a_live_capsule(default_base_model, browser, tmp_path):
    from iv_app.sample import make_small_dac
    from iv_pipelines.deploy.targets import LocalDeployer
    from iv_pipelines.edge.forward import DetectionStream
    from iv_pipelines.gateway.app import create_gateway_app
    from iv_pipelines.gateway.demo import DEMO_DEVICE, build_scene, play
    from iv_pipelines.gateway.keys import ApiKeys
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from iv_pipelines.storage import StorageLayout

    _, base_root = default_base_model
    layout = StorageLayout(tmp_path / "iv")
    layout.root.mkdir()
    key = load_or_create_signing_key(tmp_path / "keys")
    make_small_dac(layout.root, key, base_model=StorageLayout(base_root).base_model_dir())
    energy = {"E_state": 1.0, "dE_dt": 1.0, "S_state": 0.5, "method": "test"}
    pkg, _, _ = build_dac_package(layout.root, DAC, key, key.public, energy, "run", [])
    deployer = LocalDeployer(tmp_path / "deployments")
    log_dir = layout.inference_log_dir(DAC)
    rec = deployer.deploy(pkg.directory, pkg.dac_id, pkg.version, env={"IV_INFERENCE_LOG_DIR": str(log_dir)})
    # what dac_deployment leaves for a deployed DAC: its pin, its energy states in the Atlas
    import contextlib

    from iv_pipelines.energy.atlas import EnergyState, FileAtlas

    layout.pin_file(DAC).parent.mkdir(parents=True, exist_ok=True)
    layout.pin_file(DAC).write_text(json.dumps({"dac_id": DAC, "title": "Bedroom", "status": "serving"}))
    atlas = FileAtlas(tmp_path / "atlas")
    atlas.record([EnergyState(f"dac:{DAC}", int(time.time() * 1000), 1.0, 1.0, 0.5, "lifecycle", "run")])
    stream = DetectionStream()
    _, api_key = ApiKeys(layout.root / "gateway").create("acme-healthcare")
    app = create_gateway_app(
        layout.root,
        [REPO / "examples" / "themes"],
        detections=stream,
        static_dir=REPO / "web" / "dist",
        demo_key=api_key,
        demo_simulated=True,
        atlas=lambda: contextlib.nullcontext(atlas),
        capsule_url_for=lambda d: rec.url if d == DAC else None,
    )
    server, thread, base = _serve(app)
    scene = build_scene(layout, DAC)
    player = threading.Thread(
        target=lambda: asyncio.run(play(layout, DAC, rec.url, stream, scene, loops=2)), daemon=True
    )
    try:
        page, errors = _open(browser, base + "/demo")
        page.wait_for_function(
            "() => document.querySelector('iv-sensing-dashboard')?.dataset.ready === 'true'", timeout=15_000
        )
        page.locator(f'iv-capsule-pin li[data-dac="{DAC}"]').wait_for(timeout=15_000)
        page.wait_for_timeout(500)  # the pin subscribes to the detection stream after its first render
        player.start()
        # >= 20 of the capsule's detections reach the dashboard's timeline (one per second of CSI)
        page.wait_for_function(
            "() => document.querySelector('iv-sensing-dashboard').shadowRoot.querySelectorAll('[role=log] li').length >= 20",
            timeout=90_000,
        )
        assert "Simulated sensor" in page.locator("main > p").first.inner_text()
        # a fall detected by the capsule in the scene raises the pin's alert; answer it with the keyboard
        alert = page.locator('iv-capsule-pin [data-alert="fall"]')
        alert.wait_for(timeout=60_000)
        assert "Was this a fall?" in alert.inner_text()
        if os.environ.get("IV_UPDATE_SCREENSHOTS"):  # the picture in the README
            page.screenshot(path=str(REPO / "docs" / "img" / "capsule-pins-live.png"), full_page=True)
        violations = axe_violations(page)
        assert violations == [], violations
        page.get_by_role("button", name="Yes, it was a fall").focus()
        page.keyboard.press("Enter")
        page.locator('iv-capsule-pin [data-alert="fall"]').first.wait_for(state="detached", timeout=10_000)
        assert errors == []
        page.close()
    finally:
        player.join(timeout=120)
        server.should_exit = True
        thread.join(timeout=10)
        deployer.stop(pkg.dac_id)
    assert scene.loops == 2 and scene.sent > 0
    recs = [json.loads(x) for x in layout.feedback_file(DAC).read_text().splitlines()]
    assert recs and recs[0]["was_fall"] is True and recs[0]["device_id"] == DEMO_DEVICE
    # the answer is stored with the real 2 s window of frames the ingest service stored
    assert recs[0]["window_frames"] >= 150, recs[0]
    window = layout.feedback_windows_dir(DAC) / recs[0]["window"]
    assert window.read_text().count("CSI_DATA") == recs[0]["window_frames"]
    # and the capsule, which logged the window it alerted on, has the label in its inference log
    from iv_pipelines.runtime.inference_log import InferenceLog

    assert recs[0]["capsule_feedback"] == "stored", recs[0]
    [fb] = InferenceLog(log_dir, ["empty", "walk", "sit", "fall"]).feedback()
    assert (fb["window_id"], fb["label"], fb["predicted"], fb["device_id"]) == (
        recs[0]["window_id"],
        "fall",
        "fall",
        DEMO_DEVICE,
    )


def test_the_explorer_launches_a_real_dagster_run_and_shows_it_succeed(
    default_base_model, calibrated, browser, tmp_path
):
    from iv_pipelines.gateway.app import create_gateway_app
    from iv_pipelines.gateway.dagster_runs import DagsterRuns
    from iv_pipelines.gateway.keys import ApiKeys

    # a Dagster home as `make ui` has one after `make demo`; the client's partition is added
    # by the gateway, as the UI would
    home = tmp_path / "home"
    home.mkdir()
    # no daemon here: runs launch as soon as they are submitted (`make ui` runs the daemon)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n"
        "  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    layout, _ = lifecycle_home(home, default_base_model, calibrated)

    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home), IV_STORAGE_ROOT=str(layout.root))
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml"]
        + ["-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        _, key = ApiKeys(layout.root / "gateway").create("acme-healthcare", scopes=("deploy",))
        runs = DagsterRuns(f"http://127.0.0.1:{port}/graphql")
        app = create_gateway_app(
            layout.root,
            [REPO / "examples" / "themes"],
            static_dir=REPO / "web" / "dist",
            demo_key=key,
            runs=runs,
        )
        server, thread, base = _serve(app)
        page, _ = _open(browser, base + "/demo")
        row = page.locator(f'iv-dac-explorer tr[data-dac="{DAC}"]')
        row.wait_for(timeout=15_000)
        assert "not evaluated yet" in row.inner_text()  # nothing trained yet
        violations = axe_violations(page)
        assert violations == [], violations
        page.get_by_role("button", name=f"Run lifecycle of {DAC}").focus()
        page.keyboard.press("Enter")
        cell = row.locator("td[data-run-status]")
        page.wait_for_function(
            "() => ['STARTING', 'STARTED'].includes(document.querySelector('iv-dac-explorer')"
            ".shadowRoot.querySelector('td[data-run-status]').dataset.runStatus)",
            timeout=60_000,
        )
        # one run per DAC at a time, whoever asks
        r = urllib.request.Request(
            f"{base}/v1/dacs/{DAC}/runs", method="POST", headers={"Authorization": f"Bearer {key}"}
        )
        with pytest.raises(urllib.error.HTTPError) as conflict:
            urllib.request.urlopen(r, timeout=30)
        assert conflict.value.code == 409
        page.wait_for_function(
            "() => ['SUCCESS', 'FAILURE', 'CANCELED'].includes(document.querySelector('iv-dac-explorer')"
            ".shadowRoot.querySelector('td[data-run-status]').dataset.runStatus)",
            timeout=400_000,
            polling=1000,
        )
        assert cell.get_attribute("data-run-status") == "SUCCESS", cell.inner_text()
        assert " of " in cell.inner_text() and "steps" in cell.inner_text()
        # the run was Dagster's own: its tags say where it came from, and it built the DAC
        [run] = [
            r for r in _runs(port) if r["tags"].get("dagster/partition") == DAC and r["status"] == "SUCCESS"
        ]
        assert run["tags"]["iv/launched_by"] == "gateway" and run["tags"]["iv/client"] == "acme-healthcare"
        assert layout.current_package(DAC) is not None
        page.wait_for_function(
            "() => !document.querySelector('iv-dac-explorer').shadowRoot"
            f".querySelector('tr[data-dac=\"{DAC}\"]').innerText.includes('not evaluated yet')",
            timeout=15_000,
        )
        assert "simulated client room" in row.inner_text()
        page.close()
    finally:
        if server is not None:
            server.should_exit = True
        from iv_pipelines.deploy.targets import LocalDeployer

        LocalDeployer(layout.deployments_dir()).stop(DAC)
        web.terminate()
        web.wait(timeout=30)


def _runs(port: int) -> list[dict]:
    q = json.dumps(
        {"query": "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"}
    )
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=q.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        res = json.loads(r.read())["data"]["runsOrError"]["results"]
    return [{"status": x["status"], "tags": {t["key"]: t["value"] for t in x["tags"]}} for x in res]
