"""Issue #14, intake and the verification CLI: a YAML bomb is refused at once and nothing is
written; control and bidirectional-override characters are refused in text a UI displays;
verification never creates keys; `iv verify-package` names the file that changed, inside a
directory or a tarball."""

import io
import json
import resource
import shutil
import tarfile
import time

import pytest
from click.testing import CliRunner

from iv_pipelines.errors import InputError
from iv_pipelines.request import parse_request_text

GOOD = (
    "client_id: acme\ndomain: wifi-sensing\n"
    "text: detect falls of an elderly resident living alone\n"
    "environment: {description: a small living room}\n"
)


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return GOOD + "\n".join(lines) + f"\nconstraints: {{data_residency: *a{levels - 1}}}\n"


def test_i1_a_yaml_bomb_is_refused_in_milliseconds_without_expanding_it():
    text = _bomb()
    assert len(text) < 1200
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="expands to more than 20000 values through its aliases"):
        parse_request_text(text, source="bomb.yaml")
    assert time.perf_counter() - t0 < 2.0  # was 61-70 s
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100 * 1024  # KiB: was 3 GB


def test_i1_a_bomb_in_the_drop_folder_is_rejected_with_its_reason_and_nothing_stored(tmp_path):
    from iv_pipelines.intake import RequestStore, process_drop_folder

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "bomb.yaml").write_text(_bomb())
    store = RequestStore(tmp_path / "store")
    t0 = time.perf_counter()
    out = process_drop_folder(drop, store)
    assert time.perf_counter() - t0 < 5.0
    assert not out.accepted and len(out.rejected) == 1
    assert "aliases" in out.rejected[0].error_file.read_text()
    assert store.list_ids() == []


def test_aliases_within_reason_still_work():
    doc = (
        "client_id: acme\ndomain: wifi-sensing\n"
        "text: &ask detect falls of an elderly resident living alone\n"
        "environment: {description: *ask}\n"
    )
    req = parse_request_text(doc)
    assert req.environment.description == req.text


@pytest.mark.parametrize(
    "field, value, where",
    [
        ("text", "detect falls \u202eof the elderly resident", "text"),
        ("text", "detect falls of the\x00 elderly resident", "text"),
        ("environment", {"description": "living room \u2066isolated\u2069"}, "environment.description"),
        ("constraints", {"data_residency": "eu\x1b[31m"}, "constraints.data_residency"),
    ],
)
def test_control_and_bidi_override_characters_are_refused_naming_the_field(field, value, where):
    doc = {
        "client_id": "acme",
        "domain": "wifi-sensing",
        "text": "detect falls of an elderly resident living alone",
        "environment": {"description": "a small living room"},
    } | {field: value}
    with pytest.raises(InputError) as err:
        parse_request_text(json.dumps(doc))
    line = "\n".join(err.value.problems)
    assert line.startswith(where + ":") and "U+" in line and "not accepted in text a UI displays" in line


def test_ordinary_unicode_text_is_welcome():
    req = parse_request_text(GOOD.replace("living alone", "vivant seul à Montréal — 80+ ans"))
    assert "Montréal" in req.text


def test_iv_verify_never_creates_a_key(tmp_path, monkeypatch):
    from iv_app.cli import main

    for var in ("DAGSTER_HOME", "IV_SIGNING_KEY", "IV_SIGNING_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    bundle = tmp_path / "lineage"
    bundle.mkdir()
    r = CliRunner().invoke(main, ["verify", str(bundle)])
    assert r.exit_code != 0 and "no trusted key" in r.output and "never creates a key" in r.output
    assert not list(tmp_path.rglob("*.pem")) and not (tmp_path / "keys").exists()


@pytest.fixture()
def package_copy(small_package, tmp_path):
    _root, key, pkg, _ = small_package
    root = tmp_path / pkg.dac_id
    shutil.copytree(pkg.directory, root / pkg.version)
    for f in (pkg.tarball, pkg.attestation):
        shutil.copyfile(f, root / f.name)
    pub = tmp_path / "factory.pem"
    from iv_pipelines.proof.dsse import public_pem

    pub.write_text(public_pem(key.public))
    return root / pkg.version, root / pkg.tarball.name, pub


def test_verify_package_passes_an_untouched_package_dir_and_tarball(package_copy):
    from iv_app.cli import main

    pkg_dir, tarball, pub = package_copy
    for target in (pkg_dir, tarball):
        r = CliRunner().invoke(main, ["verify-package", str(target), "--public-key", str(pub)])
        assert r.exit_code == 0, r.output
        assert "files match the signed attestation" in r.output


def test_verify_package_names_the_tampered_file_inside_a_tarball(package_copy):
    from iv_app.cli import main

    _pkg_dir, tarball, pub = package_copy
    # rebuild the tarball with one member changed
    members = []
    with tarfile.open(tarball, "r:gz") as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else None
            if m.name.endswith("/runtime.json"):
                doc = json.loads(data)
                doc["decision"]["fall_threshold"] = 0.99
                data = json.dumps(doc).encode()
                m.size = len(data)
            members.append((m, data))
    with tarfile.open(tarball, "w:gz") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    r = CliRunner().invoke(main, ["verify-package", str(tarball), "--public-key", str(pub)])
    assert r.exit_code == 1
    assert f"{tarball.name}: sha256 differs" in r.output
    assert f"runtime.json (in {tarball.name}): sha256 differs from the attestation" in r.output


def test_verify_package_names_a_tampered_file_in_a_directory(package_copy):
    from iv_app.cli import main

    pkg_dir, _tarball, pub = package_copy
    (pkg_dir / "weights" / "model.safetensors").write_bytes(b"not the model")
    r = CliRunner().invoke(main, ["verify-package", str(pkg_dir), "--public-key", str(pub)])
    assert r.exit_code == 1 and "weights/model.safetensors: sha256 differs" in r.output
