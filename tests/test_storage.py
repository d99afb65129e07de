"""The storage layout lives in one module (issue #15): its paths, its fleet queries, the
folders it creates for users, and a repository-wide check that no other module spells the
layout's file names."""

import json
import re
from pathlib import Path

from iv_pipelines.storage import StorageLayout

REPO = Path(__file__).resolve().parent.parent
LAYOUT_NAMES = re.compile(r"current\.json|capsules\.jsonl|wifi-sensing-base")


def test_paths_are_under_the_root_and_dac_dirs_are_created_on_request(tmp_path):
    s = StorageLayout(tmp_path)
    assert s.dac_dir("a", create=False) == tmp_path / "dacs" / "a"
    assert not (tmp_path / "dacs" / "a").exists()
    assert s.dac_dir("a").is_dir()
    for p in (
        s.current_pointer("a"),
        s.deployment_file("a"),
        s.telemetry_file(),
        s.base_model_dir(),
        s.base_model_history(1),
        s.adapter_dir("a"),
        s.lineage_dir("a"),
        s.energy_history_dir(),
        s.operations_file("health.json"),
        s.rdr_file("queue.jsonl"),
        s.pin_file("a"),
        s.reports_dir("2026-11"),
        s.score_calibration_file(),
    ):
        assert p.is_relative_to(tmp_path), p
    assert s.base_model_history(1) != s.base_model_dir()
    assert s.base_model_candidate_dir().parent == s.base_model_dir().parent


def test_ensure_creates_the_drop_folder_a_user_copies_into(tmp_path):
    s = StorageLayout(tmp_path / "fresh-home").ensure()
    for d in ("drop", "drop/accepted", "drop/rejected"):
        assert (tmp_path / "fresh-home" / d).is_dir()
    s.ensure()  # idempotent


def test_fleet_queries_see_only_complete_entries(tmp_path):
    s = StorageLayout(tmp_path)
    assert s.packaged_dacs() == s.deployed_dacs() == s.requested_dacs() == s.adapted_dacs() == []
    assert s.current_package("a") is None and s.deployment("a") is None and s.dac_request("a") is None
    s.write_current_package("b", {"version": "1.0.0", "directory": str(tmp_path / "pkg")})
    s.write_current_package("a", {"version": "2.0.0", "directory": str(tmp_path / "pkg")})
    s.package_root("c").mkdir(parents=True)  # a package folder with no pointer is not current
    assert s.packaged_dacs() == ["a", "b"]
    assert s.current_package("a")["version"] == "2.0.0"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "manifest.json").write_text(json.dumps({"dac_id": "a"}))
    assert s.current_manifest("a") == {"dac_id": "a"}
    s.deployment_file("a").parent.mkdir(parents=True)
    s.deployment_file("a").write_text("{}")
    s.deployments_dir().joinpath("stale").mkdir()  # deployer state without a record
    assert s.deployed_dacs() == ["a"]
    s.dac_dir("x")
    s.dac_request_file("y").parent.mkdir(parents=True)
    s.dac_request_file("y").write_text('{"domain": "wifi-sensing"}')
    assert s.requested_dacs() == ["y"] and s.dac_request("y")["domain"] == "wifi-sensing"
    s.adapter_dir("y").mkdir()
    assert s.adapted_dacs() == []  # no weights yet
    (s.adapter_dir("y") / "adapter_model.safetensors").write_bytes(b"")
    assert s.adapted_dacs() == ["y"]
    assert s.health_rows() == []


def test_the_pointer_is_replaced_whole(tmp_path):
    s = StorageLayout(tmp_path)
    s.write_current_package("a", {"version": "1.0.0"})
    s.write_current_package("a", {"version": "1.1.0"})
    assert json.loads(s.current_pointer("a").read_text()) == {"version": "1.1.0"}
    assert [p.name for p in s.package_root("a").iterdir()] == ["current.json"]  # no temp file left


def test_factory_storage_wraps_the_layout_and_creates_the_drop_folder(tmp_path):
    from resources.storage import FactoryStorage

    fs = FactoryStorage(root_dir=str(tmp_path / "home"))
    assert fs.layout.root == fs.root
    assert fs.drop_dir().is_dir() and (fs.drop_dir() / "accepted").is_dir()
    assert fs.dac_dir("a") == fs.layout.dac_dir("a", create=False)


def test_the_embedded_resources_create_the_layout_on_a_fresh_home(tmp_path, monkeypatch):
    from resources.selection import resources_for

    monkeypatch.delenv("IV_STORAGE_ROOT", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    resources_for("local")
    assert (tmp_path / "dh" / "iv" / "drop").is_dir()  # README: cp my-request.yaml .dagster_home/iv/drop/


def offenders(root: Path) -> list[str]:
    """Lines of Python outside the storage module and the tests that spell a layout name."""
    out = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if rel.parts[0] in {".venv", "tests", ".dagster_home", "node_modules"} or rel.as_posix() == (
            "iv_pipelines/storage.py"
        ):
            continue
        if any(p.startswith(".") or p == "node_modules" for p in rel.parts[:-1]):
            continue
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if LAYOUT_NAMES.search(line):
                out.append(f"{rel}:{n}: {line.strip()}")
    return out


def test_no_module_but_the_storage_module_spells_the_layout():
    assert offenders(REPO) == []


def test_the_layout_check_catches_a_module_that_builds_a_path(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "x.py").write_text('p = root / "packages" / dac / "current.json"\n')
    assert offenders(tmp_path) == ['assets/x.py:1: p = root / "packages" / dac / "current.json"']
