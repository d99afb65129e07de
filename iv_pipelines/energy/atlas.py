"""The Energy Atlas interface and its file-backed implementation.

One interface (`EnergyAtlas`): record energy states of DACs and services, read a DAC's
trajectory. `FileAtlas` keeps one JSON line per state under `<root>/energy_states.jsonl`,
appended under an exclusive lock; a state is identified by (entity, source, run), so
recording the same state twice keeps one copy. The graph engines (ladybug embedded, Neo4j in
production) implement the same interface with the operations issue.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class EnergyState:
    entity: str  # "dac:<id>" or "service:<id>"
    ts_ms: int  # epoch milliseconds
    E_state: float  # J
    dE_dt: float  # W
    S_state: float  # 0..1
    source: str  # what produced it, e.g. "lifecycle" or "capsule"
    run_id: str

    def key(self) -> tuple[str, str, str]:
        return (self.entity, self.source, self.run_id)


class EnergyAtlas(Protocol):
    def record(self, states: Iterable[EnergyState]) -> int: ...
    def trajectory(
        self, entity: str, since_ms: int = 0, until_ms: int | None = None
    ) -> list[EnergyState]: ...


class FileAtlas:
    FILE = "energy_states.jsonl"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / self.FILE

    def _read(self) -> list[EnergyState]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(EnergyState(**json.loads(line)))
                except (json.JSONDecodeError, TypeError) as e:
                    raise ValueError(f"{self.path}:{n}: not an energy state ({e})") from None
        return out

    def record(self, states: Iterable[EnergyState]) -> int:
        """Append states not already recorded; returns how many were new."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            seen = {s.key() for s in self._read()}
            new = [s for s in states if s.key() not in seen]
            if new:
                with open(self.path, "a") as fh:
                    fh.write("".join(json.dumps(asdict(s), sort_keys=True) + "\n" for s in new))
                    fh.flush()
                    os.fsync(fh.fileno())
            return len(new)

    def trajectory(self, entity: str, since_ms: int = 0, until_ms: int | None = None) -> list[EnergyState]:
        return sorted(
            (
                s
                for s in self._read()
                if s.entity == entity and s.ts_ms >= since_ms and (until_ms is None or s.ts_ms <= until_ms)
            ),
            key=lambda s: s.ts_ms,
        )
