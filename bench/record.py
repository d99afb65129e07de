"""Run one bench script and keep what it printed, for docs/measurements.md.

    .venv/bin/python bench/record.py NAME [ARGS...]   # runs bench/NAME.py ARGS, writes bench/results/NAME.json
    .venv/bin/python bench/record.py NAME.VARIANT [ARGS...]   # the same bench with other ARGS, kept apart
    .venv/bin/iv docs                                 # regenerates docs/measurements.md from the records

The output is passed through as it comes; the record is written only when the script exits 0
(a failed or interrupted run never replaces a good record). The record names the command,
the time and the machine (CPU model and count, GPU or none), so every number on the page has
a command, a date and a machine beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 80  # the summary a bench prints last; progress lines before it are dropped


_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - ")  # a Dagster / logging line
_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ")  # a Python warning (its source line follows, indented)


def summary_lines(lines: list[str]) -> list[str]:
    """What the bench printed, less log records, warnings and their continuation lines."""
    out, skipping = [], False
    for ln in lines:
        if _LOG.match(ln) or _WARNING.match(ln):
            skipping = True
            continue
        if skipping and (ln.startswith(" ") or not ln.strip()):
            continue
        skipping = False
        if ln.strip():
            out.append(ln)
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        gpu = q.stdout.strip().splitlines()[0] if q.returncode == 0 and q.stdout.strip() else gpu
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    script, _, variant = argv[0].partition(".") if argv else ("", "", "")
    if (
        not argv
        or not (REPO / "bench" / f"{script}.py").is_file()
        or script in ("record", "_common")
        or (variant and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", variant))
    ):
        names = sorted(p.stem for p in (REPO / "bench").glob("*.py") if not p.stem.startswith("_"))
        print(
            f"usage: bench/record.py NAME[.VARIANT] [ARGS...]; NAME is one of "
            f"{', '.join(n for n in names if n != 'record')}; VARIANT: lower-case letters, digits, '-'"
        )
        return 2
    name, args = argv[0], argv[1:]
    command = " ".join([".venv/bin/python", f"bench/{script}.py", *args])
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / f"{script}.py"), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line.rstrip("\n"))
    if proc.wait() != 0:
        print(f"[record] {command} exited {proc.returncode}: no record written", file=sys.stderr)
        return proc.returncode
    if any(ln.startswith("SKIPPED") for ln in lines):  # measured nothing: not a record
        print(f"[record] {command} skipped (see above): no record written", file=sys.stderr)
        return 0
    kept = summary_lines(lines)
    out = REPO / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = {
        "bench": name,
        "command": command,
        "recorded_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "output": kept[-MAX_LINES:],
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(out)
    print(f"[record] {out.relative_to(REPO)} written; run `.venv/bin/iv docs` to update docs/measurements.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
