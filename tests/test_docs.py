"""The documentation stands on its own and cannot drift: the README is short and links to
pages that exist; the generated pages (operations tables, measurements) are what `iv docs`
generates from the code location and the bench records; a malformed bench record is refused
with its file named."""

import json
import re

import pytest

from iv_app import docs
from tests.conftest import REPO

PAGES = (
    "glossary",
    "architecture",
    "lifecycle",
    "sensing",
    "operations",
    "edge",
    "production",
    "measurements",
)


def test_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 150
    for page in PAGES:
        assert f"docs/{page}.md" in text and (REPO / "docs" / f"{page}.md").is_file()
    for target in re.findall(r"\]\(([^)#]+)", text):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+\.md)", (REPO / "docs" / f"{page}.md").read_text()):
            assert (REPO / "docs" / target).exists(), (page, target)


def test_the_glossary_defines_every_seed_name():
    text = (REPO / "docs" / "glossary.md").read_text()
    for name in (
        "OBMI",
        "AROE",
        "AESP",
        "QERO",
        "AIEO",
        "PRIN",
        "ODS",
        "DGM",
        "ACE",
        "RDR",
        "TTF",
        "UTID",
        "ASI",
        "T2L",
        "M2N2",
        "Shadow Twin",
    ):
        assert name in text, name


def test_generated_pages_are_up_to_date():
    stale = [str(p) for p, text in docs.render().items() if not p.exists() or p.read_text() != text]
    assert stale == [], f"run `.venv/bin/iv docs`: {stale}"


def test_the_operations_table_lists_every_schedule_and_sensor():
    from iv_app.definitions import defs

    table = docs.operations_tables(defs)
    repo = defs.get_repository_def()
    for d in [*repo.schedule_defs, *repo.sensor_defs]:
        assert f"`{d.name}`" in table


def test_measurements_come_only_from_records_with_a_command(tmp_path):
    rec = {
        "bench": "ttf",
        "command": ".venv/bin/python bench/ttf.py",
        "recorded_at": "2026-12-06 05:00 UTC",
        "machine": "2 cores",
        "output": ["all-pairs 0.131 s vs networkx 2.09 s: 16.0x"],
    }
    (tmp_path / "ttf.json").write_text(json.dumps(rec))
    page = docs.measurements_page(docs.load_records(tmp_path), ["ttf", "atlas"])
    assert "`.venv/bin/python bench/ttf.py` — recorded 2026-12-06 05:00 UTC on 2 cores" in page
    assert "16.0x" in page and "bench/record.py atlas" in page
    (tmp_path / "bad.json").write_text(json.dumps({"bench": "bad", "output": ["1.0"]}))
    with pytest.raises(ValueError, match="bad.json: not a bench record: no 'command'"):
        docs.load_records(tmp_path)


def test_every_committed_record_names_a_bench_that_exists():
    for rec in docs.load_records():
        script = rec["bench"].partition(".")[0]  # NAME.VARIANT: the same bench with other arguments
        assert (REPO / "bench" / f"{script}.py").is_file()
        assert rec["command"].startswith(f".venv/bin/python bench/{script}.py")


def test_record_names_a_variant_of_a_bench_or_refuses(capsys):
    """`bench/record.py NAME.VARIANT` keeps a second record of one bench run with other
    arguments; a variant that is not a plain lower-case word is refused before anything runs."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    from record import main

    for bad in (["real_devices.../x"], ["real_devices.Demo"], ["nosuchbench.demo"], ["record.x"]):
        assert main(bad) == 2, bad
        assert "usage: bench/record.py NAME[.VARIANT]" in capsys.readouterr().out


def test_a_record_keeps_what_the_bench_printed_without_logs_or_warnings():
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    from record import summary_lines

    lines = [
        "2026-12-06 04:56:30 +0000 - dagster - WARNING - rejected req-048.yaml: invalid:",
        "  - calibration[0].path: no such capture file",
        "/x/sensor_definition.py:809: BetaWarning: Parameter `owners` is in beta",
        "  return SensorDefinition(",
        "",
        "cost_anomaly_sensor: 38 ms with 1,000 DACs | goal < 2 s: met",
        "  indented result line kept",
    ]
    assert summary_lines(lines) == [
        "cost_anomaly_sensor: 38 ms with 1,000 DACs | goal < 2 s: met",
        "  indented result line kept",
    ]


def test_the_readme_quotes_the_leave_one_chip_out_table_from_its_bench_record():
    """Issue #13: the README quotes `bench/real_devices.py`'s table; it is generated from the
    bench's record, so it changes only when the bench prints something else."""
    rec = {
        "bench": "real_devices",
        "command": "bench/real_devices.py --public",
        "recorded_at": "2026-12-07",
        "output": [
            "| c3 | iq | none | 0.50 (18) | 1.00 (18) | 0.9 | 0.0 |",  # a per-fold table: not quoted
            "== leave-one-chip-out, at the capsule's decision (goal: >= 0.95 in both share columns)",
            "| chip | input | calibration | empty→empty | moving→non-empty | AUROC | called fall |",
            "|---|---|---|---|---|---|---|",
            "| c3 | iq | none | 1.00 (18) | 0.94 (18) | 1.000 | 0.08 |",
            "| c3 | amp52 | adapter | 0.72 (18) | 1.00 (18) | 1.000 | 0.11 |",
            "goal met in 1 of 2 rows",
        ],
    }
    table = docs.loco_table([rec])
    assert "| c3 | 1.00 / 0.94 | - | - | 0.72 / 1.00 |" in table
    assert "bench/real_devices.py --public`, recorded 2026-12-07" in table
    with pytest.raises(ValueError, match="no leave-one-chip-out table"):
        docs.loco_table([rec | {"output": rec["output"][:1]}])
    # since 2026-12-07 the bench also scores the baseline files whole (warm-up included): the
    # README says which protocol its shares follow and shows the whole-file share where it differs
    whole = rec | {
        "output": [
            rec["output"][1],
            rec["output"][2] + " empty→empty, whole files |",
            "|---|---|---|---|---|---|---|---|",
            "| c3 | iq | none | 1.00 (12) | 0.94 (18) | 1.000 | 0.08 | 0.89 (18) |",
            "| c3 | amp52 | adapter | 0.92 (12) | 1.00 (18) | 1.000 | 0.11 | 0.92 (18) |",
        ]
    }
    table = docs.loco_table([whole])
    assert "| c3 | 1.00 / 0.94 (0.89 whole) | - | - | 0.92 / 1.00 |" in table
    assert "less their first 300 packets" in table and "less their" not in docs.loco_table([rec])
    # since 2026-12-07 the bench's summary also says what the shares' lower bounds certify,
    # and the README's quote carries it (an older record's summary is not quoted)
    assert "certified" not in table and "Goal met" not in table
    summary = "goal met in 1 of 2 rows (1 with the baseline files whole); certified (95 % lower bound of both shares >= 0.95) in 0 of 2"
    bounded = whole | {"output": whole["output"] + [summary + "; adapter fall thresholds ...: {}"]}
    header = docs.loco_table([bounded]).splitlines()[0]
    assert header.endswith(
        ". Goal met in 1 of 2 rows (1 with the baseline files whole); certified (95 % "
        "lower bound of both shares >= 0.95) in 0 of 2 (overlapping windows: optimistic bounds)"
    )
    assert docs.loco_table(docs.load_records()) in (REPO / "README.md").read_text()
