"""The Capsule Pin components in a real browser (Debian's chromium driven by playwright):
the demo page loads with no console errors, the pin widget lists the client's DACs, the
card's gauge says the measured E_state, the badge says "verified" for a DAC registered on the
ledger and "not verified" once its record is tampered with, and a flexible theme colour
changes the computed style."""

import json
import os
import shutil
import socket
import time

import pytest

from tests.conftest import CHROMIUM, REPO, open_page, serve_in_thread

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) or not (REPO / "web" / "dist" / "iv-components.js").is_file(),
    reason="needs Debian's chromium and the built components (make install: apt chromium, npm run build in web/)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):

    from iv_app.sample import make_small_dac
    from iv_pipelines.gateway.app import create_gateway_app
    from iv_pipelines.gateway.keys import ApiKeys
    from iv_pipelines.ledger.chain import dac_digest
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from iv_pipelines.storage import StorageLayout
    from resources.ledger import LedgerResource

    tmp = tmp_path_factory.mktemp("gw")
    layout = StorageLayout(tmp / "iv")
    layout.root.mkdir()
    key = load_or_create_signing_key(tmp / "keys")
    dac = "fall-detection-acme"
    make_small_dac(layout.root, key, dac)
    ledger = LedgerResource(state_dir=str(tmp / "ledger")).get()
    lineage = json.loads((layout.lineage_dir(dac) / "lineage.json").read_text())
    reg = ledger.register(dac, dac_digest(dac, lineage["merkle"]["root"]))
    (layout.lineage_dir(dac) / "registration.json").write_text(
        json.dumps(reg.to_json() | {"backend": "embedded"})
    )
    pin = {
        "dac_id": dac,
        "client_id": "acme-healthcare",
        "title": "Living room fall detection",
        "status": "serving",
        "energy": {"E_state": 20.5, "dE_dt": 2.25, "S_state": 0.5},
    }
    layout.pin_file(dac).parent.mkdir(parents=True, exist_ok=True)
    layout.pin_file(dac).write_text(json.dumps(pin))
    themes = tmp / "themes"
    themes.mkdir()
    shutil.copyfile(REPO / "examples" / "themes" / "healthcare.yaml", themes / "healthcare.yaml")
    _, api_key = ApiKeys(layout.root / "gateway").create("acme-healthcare")
    from iv_pipelines.edge.forward import DetectionStream
    from iv_pipelines.edge.ingest import DeviceKeys

    DeviceKeys(layout.edge_devices_file()).add("esp-demo", b"d" * 32, dac_id=dac)
    stream = DetectionStream()
    import contextlib

    from iv_pipelines.energy.atlas import EnergyState, FileAtlas

    atlas = FileAtlas(tmp / "atlas")
    now_ms = int(time.time() * 1000)
    atlas.record(
        [EnergyState(f"dac:{dac}", now_ms - 86_400_000, 31.25, 2.5, 0.6, "lifecycle", "run-1")]
        + [
            EnergyState(f"dac:{dac}", now_ms - d * 86_400_000, 5.0 + d, 0.1, 0.5, "energy_history", f"d{d}")
            for d in range(5)
        ]
    )
    app = create_gateway_app(
        layout.root,
        [themes],
        detections=stream,
        atlas=lambda: contextlib.nullcontext(atlas),
        static_dir=REPO / "web" / "dist",
        demo_key=api_key,
        ledger=ledger,
        trusted_key=key.public,
    )
    server, t, base = serve_in_thread(app)
    yield base, layout, themes, dac, stream
    server.should_exit = True
    t.join(timeout=10)


def _open(browser, url):
    return open_page(browser, url)


def test_demo_page_pins_gauge_and_badge(served, browser, tmp_path):
    base, layout, _, dac, _ = served
    page, errors = _open(browser, base + "/demo")
    item = page.locator(f'iv-capsule-pin li[data-dac="{dac}"]')
    item.wait_for(timeout=15_000)
    assert item.get_attribute("data-status") == "serving"
    gauge = page.locator("iv-pin-card [role=meter]")
    gauge.wait_for(timeout=15_000)
    assert float(gauge.get_attribute("aria-valuenow")) == 31.25  # the Atlas's E_state (the pin says 20.5)
    badge = page.locator("iv-pin-card [role=status]")
    badge.wait_for(timeout=30_000)
    assert badge.get_attribute("data-state") == "verified", badge.get_attribute("title")
    assert (
        "Signed lineage" in page.locator("iv-capsule-pin .sacred").inner_text()
    )  # the sacred token, unchanged
    page.screenshot(path=str(tmp_path / "demo.png"))
    if os.environ.get("IV_UPDATE_SCREENSHOTS"):  # the picture in docs/gateway.md
        (REPO / "docs" / "img").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "img" / "capsule-pins-demo.png"))
    assert errors == []
    from tests.test_gateway_live import axe_violations

    violations = axe_violations(page)
    assert violations == [], violations
    # tamper with the registration record: the badge must stop saying verified
    reg = layout.lineage_dir(dac) / "registration.json"
    rec = json.loads(reg.read_text())
    reg.write_text(json.dumps(rec | {"digest": "00" * 32}))
    try:
        page.reload()
        badge = page.locator("iv-pin-card [role=status]")
        badge.wait_for(timeout=30_000)
        assert badge.get_attribute("data-state") == "not verified"
    finally:
        reg.write_text(json.dumps(rec))
    page.close()


def test_a_flexible_colour_changes_the_computed_style(served, browser):
    base, _, themes, _, _ = served
    page, _ = _open(browser, base + "/demo")
    pin = page.locator("iv-capsule-pin")
    page.locator("iv-capsule-pin li").first.wait_for(timeout=15_000)
    colour = lambda: pin.evaluate("e => getComputedStyle(e).borderTopColor")  # noqa: E731
    assert colour() == "rgb(11, 110, 79)"  # healthcare primary #0b6e4f
    theme = themes / "healthcare.yaml"
    original = theme.read_text()
    theme.write_text(original.replace('primary_color: "#0b6e4f"', 'primary_color: "#7a1fa2"'))
    try:
        page.reload()
        page.locator("iv-capsule-pin li").first.wait_for(timeout=15_000)
        page.wait_for_function(
            "() => getComputedStyle(document.querySelector('iv-capsule-pin')).borderTopColor === 'rgb(122, 31, 162)'",
            timeout=10_000,
        )
    finally:
        theme.write_text(original)
    page.close()


def test_a_fall_alert_asks_the_caregiver_and_stores_the_answer(served, browser):
    from iv_pipelines.edge.forward import DeviceDetection

    base, layout, _, dac, stream = served
    page, errors = _open(browser, base + "/demo")
    page.locator(f'iv-capsule-pin li[data-dac="{dac}"]').wait_for(timeout=15_000)
    page.wait_for_timeout(500)  # the detection stream subscribes after the first render
    stream.publish(
        DeviceDetection(
            "esp-demo", dac, 1234, 5_000_000, "fall", 0.91, {"fall": 0.91}, "1.0.0", "simulation_only"
        )
    )
    alert = page.locator('iv-capsule-pin [data-alert="fall"]')
    alert.wait_for(timeout=10_000)
    assert "Was this a fall?" in alert.inner_text()
    page.get_by_role("button", name="No, it was not a fall").click()
    alert.wait_for(state="detached", timeout=10_000)
    [rec] = [json.loads(x) for x in layout.feedback_file(dac).read_text().splitlines()]
    assert (rec["was_fall"], rec["label"], rec["device_id"], rec["seq"]) == (False, "fall", "esp-demo", 1234)
    assert errors == []
    page.close()


def test_the_dashboard_shows_the_stream_and_the_energy_history(served, browser):
    from iv_pipelines.edge.forward import DeviceDetection

    base, _, _, dac, stream = served
    page, errors = _open(browser, base + "/demo")
    page.wait_for_function(
        "() => document.querySelector('iv-sensing-dashboard')?.dataset.ready === 'true'", timeout=15_000
    )
    probs = {"empty": 0.05, "walk": 0.8, "sit": 0.1, "fall": 0.05}
    for i in range(25):
        stream.publish(
            DeviceDetection("esp-demo", dac, i, i * 1_000_000, "walk", 0.8, probs, "1.0.0", "simulation_only")
        )
    items = page.locator(f'iv-sensing-dashboard article[data-dac="{dac}"] [role=log] li')
    page.wait_for_function(
        "() => document.querySelector('iv-sensing-dashboard').shadowRoot.querySelectorAll('[role=log] li').length >= 25",
        timeout=15_000,
    )
    assert items.count() == 25 and "walk (80%) seq 24" in items.first.inner_text()  # newest first
    assert (
        float(page.locator('iv-sensing-dashboard [aria-label="P(walk)"]').get_attribute("aria-valuenow"))
        == 0.8
    )
    graph = page.locator("iv-sensing-dashboard svg[role=img]")
    graph.wait_for(timeout=10_000)
    assert "newest 5 J" in graph.get_attribute("aria-label")  # the Atlas history, oldest to newest
    assert errors == []
    page.close()
