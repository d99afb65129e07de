"""Three of the eight new client requests (examples/requests/clients/) go through the whole
lifecycle to a deployed, smoke-tested capsule: a care-home bedroom with a false-alarm target,
a hospital ward with latency and memory limits, and a living room calibrated with a walking
capture of the client's (amplitude-only) device. bench/new_clients.py runs all eight."""

import json
import subprocess
import sys

from conftest import REPO


def test_three_new_clients_reach_dac_deployment(default_base_model, tmp_path):
    _, root = default_base_model
    out = tmp_path / "outcomes.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "new_clients.py"),
            "--home",
            str(tmp_path / "home"),
            "--only",
            "01,05,08",
            "--base-model",
            str(root / "models" / "wifi-sensing-base"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=REPO,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    outcomes = {o["request"][:2]: o for o in json.loads(out.read_text())}
    assert set(outcomes) == {"01", "05", "08"}
    for o in outcomes.values():
        assert o["ok"] and o["reached"] == "dac_deployment", (o, proc.stdout[-2000:])
        assert o["validated_on"] == "simulation_only"  # none of them has real labelled captures
    assert proc.returncode == 0
