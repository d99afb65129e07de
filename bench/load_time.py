"""Code-location load time vs `import dagster`, both measured here in the same run.

Goal (DESIGN §8): the code location loads in < 5 s. Each figure is the median of 5 fresh
interpreter starts, so it includes Python start-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, median, report, time_cmd  # noqa: E402


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    base = median(time_cmd([PY, "-c", "import dagster"], env=env))
    load = median(
        time_cmd([PY, "-c", "from iv_app.definitions import defs; defs.get_repository_def()"], env=env)
    )
    report("code location load", load, "s", "import dagster", base, "< 5 s")
    ok = load < 5.0
    print(f"load_time: {'OK' if ok else 'ABOVE GOAL'} ({load:.2f} s, {load / base:.2f}x import dagster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
