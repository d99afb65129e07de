"""Request intake: the request store and the drop-folder queue.

The store keeps one canonical JSON file per DAC (`<root>/requests/<dac_id>.json`), written
atomically. The drop folder is a queue of client files: each processed file is moved to
`accepted/` or to `rejected/` (with `<name>.error.txt` beside it), so nothing is lost and no
file is processed twice.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from iv_pipelines.errors import InputError
from iv_pipelines.paths import atomic_write_bytes, atomic_write_text
from iv_pipelines.request import (
    DAC_ID_PATTERN,
    CalibrationCapture,
    DacRequest,
    canonical_json,
    load_request_file,
)
from iv_pipelines.storage import StorageLayout

MAX_CALIBRATION_S = 1800.0
# all of a request's calibration (or evaluation) captures together: their windows travel with
# the twin context (~54 KB each, two a second for calibration, one for evaluation: ~100-200 MB)
MAX_TOTAL_CALIBRATION_S = 1800.0
MAX_EVALUATION_S = 1800.0

REQUEST_SUFFIXES = (".json", ".yaml", ".yml")
# what a declared-empty evaluation capture's windows do (its motion warnings say so)
EVALUATION_USES = "its windows are scored as an empty room, so someone moving there counts as a false alarm"


class RequestStore:
    """Validated requests on disk, one canonical JSON file per `dac_id`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        layout = StorageLayout(self.root)
        self.dir = layout.requests_dir()
        self.calibration_dir = layout.calibration_dir()

    def calibration_file(self, capture) -> Path:
        """Where the store keeps a request's calibration capture (content-addressed)."""
        if not capture.sha256:
            raise KeyError(f"calibration capture {capture.path!r} has not been stored yet (no sha256)")
        return self.calibration_dir / Path(capture.path).name

    def ingest_calibration(
        self,
        request: DacRequest,
        base_dir: Path | None,
        confine: bool = False,
        warnings: list[str] | None = None,
    ) -> DacRequest:
        """Check every calibration and evaluation capture of `request` (readable, no malformed
        lines, long enough: a calibration capture MIN_CALIBRATION_S of usable CSI, an
        evaluation capture one window) and copy it into the store under its sha256; returns
        the request pointing at the stored copies. Nothing is written unless every capture is
        good. An evaluation capture with the same content as a calibration capture is refused:
        what trains a DAC never evaluates it. With `confine` (drop-folder requests, written by
        whoever may write there) a capture path must lead inside `base_dir`: such a request
        cannot make the factory read, and bind into a DAC, a file elsewhere on the machine
        (another client's stored capture, say). Captures that pass but look wrong (a declared
        empty room with stretches that move like someone in it: `devicestats.moving_stretches`)
        are accepted, with a line each appended to `warnings` when it is given."""
        import hashlib
        import tempfile

        from iv_pipelines.sensing.calibration import CALIBRATION_USES, MIN_CALIBRATION_S
        from iv_pipelines.sensing.devicestats import empty_motion_warnings
        from iv_pipelines.sensing.features import (
            MAX_GAP_S,
            MIN_WINDOW_S,
            rate_fault,
            stretches,
            usable_seconds,
        )
        from iv_pipelines.sensing.formats import CsiFormatError, read_capture

        faults: list[str] = []
        notes: list[str] = []  # warnings, handed out only when the request is accepted
        staged: dict[str, bytes] = {}
        seconds = {"calibration": 0.0, "evaluation": 0.0}  # the captures read, together
        tmp = tempfile.TemporaryDirectory()  # exports of device captures, read then stored by digest

        def ingest(where: str, c, min_s: float, kind: str):
            """The stored spec of capture `c` (or None, with a fault recorded)."""
            if c.sha256:
                stored = self.calibration_dir / Path(c.path).name
                if not stored.is_file() or hashlib.sha256(stored.read_bytes()).hexdigest() != c.sha256:
                    faults.append(f"{where}.sha256: no stored capture {c.path!r} with this digest")
                return c
            if getattr(c, "from_device", None) is not None:  # frames the edge ingest service stored
                from iv_pipelines.edge.captures import export_capture

                if confine:  # a dropped request reads only a device registered to its own DAC
                    from iv_pipelines.edge.ingest import DeviceKeys

                    fed = DeviceKeys(StorageLayout(self.root).edge_devices_file()).dac_for(c.from_device)
                    if fed != request.dac_id:
                        faults.append(
                            f"{where}.from_device: device {c.from_device!r} is not registered to "
                            f"{request.dac_id} (`iv ingest device {c.from_device} --dac {request.dac_id}`)"
                        )
                        return None

                src = Path(tmp.name) / f"{c.from_device}-{where}.csv"
                try:
                    export_capture(
                        StorageLayout(self.root).edge_captures_dir(),
                        c.from_device,
                        src,
                        c.start_us,
                        c.seconds or 20.0,
                    )
                except (FileNotFoundError, ValueError) as e:
                    faults.append(f"{where}.from_device: {e}")
                    return None
                c = c.model_copy(update={"format": "esp-csi"})
            else:
                root = Path(base_dir) if base_dir else Path.cwd()
                src = Path(c.path)
                if not src.is_absolute():
                    src = root / src
                if confine and not src.resolve().is_relative_to(root.resolve()):
                    faults.append(
                        f"{where}.path: {c.path!r} leads outside the request's folder; a dropped "
                        "request's captures must sit beside it (or in a folder below it)"
                    )
                    return None
            try:
                cap, rep, _ = read_capture(src, c.format, c.rate_hz)
            except CsiFormatError as e:
                faults.append(f"{where}.path: {e}")
                return None
            if rep.rejected:
                n, why = rep.rejected[0]
                faults.append(
                    f"{where}.path: {len(rep.rejected)} malformed line(s) in {src.name}; line {n}: {why}"
                )
                return None
            span = float(cap.t_s[-1] - cap.t_s[0]) if len(cap.t_s) > 1 else 0.0
            seconds[kind] += span
            if span + 1e-6 < min_s or span > MAX_CALIBRATION_S:
                faults.append(
                    f"{where}.path: {src.name} lasts {span:.1f} s; a {kind} capture lasts "
                    f"{min_s:.0f}-{MAX_CALIBRATION_S:.0f} s"
                    + (" (20 s or more recommended)" if kind == "calibration" else "")
                )
                return None
            slow = rate_fault(cap.t_s)
            if slow:
                faults.append(f"{where}.path: {src.name}: {slow}")
                return None
            usable = usable_seconds(cap.t_s)
            if usable + 1e-6 < min_s:
                gaps = len(stretches(cap.t_s)) - 1
                faults.append(
                    f"{where}.path: {src.name} holds only {usable:.1f} s of CSI in stretches of at least "
                    f"{MIN_WINDOW_S:.1f} s between its {gaps} silence(s) over {MAX_GAP_S} s; a {kind} "
                    f"capture needs {min_s:.0f} s of such CSI (windows never span a silence)"
                )
                return None
            if c.activity == "empty":
                uses = CALIBRATION_USES if kind == "calibration" else EVALUATION_USES
                notes.extend(empty_motion_warnings(f"{where} ({src.name})", cap.csi, cap.t_s, uses))
            data = src.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            name = digest + src.suffix.lower()
            staged[name] = data
            if getattr(c, "from_device", None) is not None:
                return CalibrationCapture(
                    activity=c.activity,
                    path=name,
                    format="esp-csi",
                    origin=c.origin,
                    device=c.device or c.from_device,
                    sha256=digest,
                )
            extra = {"from_device": None, "seconds": None, "start_us": None} if kind == "calibration" else {}
            return c.model_copy(update={"path": name, "sha256": digest, **extra})

        cals = [
            ingest(f"calibration[{i}]", c, MIN_CALIBRATION_S, "calibration")
            for i, c in enumerate(request.calibration)
        ]
        evals = [
            ingest(f"evaluation[{i}]", c, MIN_WINDOW_S, "evaluation")
            for i, c in enumerate(request.evaluation)
        ]
        tmp.cleanup()
        if seconds["calibration"] > MAX_TOTAL_CALIBRATION_S:
            faults.append(
                f"calibration: its {len(cals)} captures last {seconds['calibration']:.0f} s together; a "
                f"request's calibration captures last at most {MAX_TOTAL_CALIBRATION_S:.0f} s in all"
            )
        if seconds["evaluation"] > MAX_EVALUATION_S:
            faults.append(
                f"evaluation: its {len(evals)} captures last {seconds['evaluation']:.0f} s together; a request's "
                f"evaluation captures last at most {MAX_EVALUATION_S:.0f} s in all (split them over "
                "requests, or score more with `iv dac evaluate` after the lifecycle)"
            )
        trained = {c.sha256: i for i, c in enumerate(cals) if c is not None}
        seen: dict[str, int] = {}
        for i, c in enumerate(evals):
            if c is None:
                continue
            if c.sha256 in trained:
                faults.append(
                    f"evaluation[{i}].path: the same capture as calibration[{trained[c.sha256]}]; "
                    "a capture that calibrates or trains the DAC never evaluates it"
                )
            elif c.sha256 in seen:
                faults.append(
                    f"evaluation[{i}].path: the same capture as evaluation[{seen[c.sha256]}] "
                    "(it would count twice)"
                )
            seen.setdefault(c.sha256, i)
        if faults:
            raise InputError(f"request for {request.dac_id}", faults)
        if warnings is not None:
            warnings.extend(notes)
        for name, data in staged.items():
            target = self.calibration_dir / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, data)
        return request.model_copy(update={"calibration": cals, "evaluation": evals})

    def path_for(self, dac_id: str) -> Path:
        if not re.match(DAC_ID_PATTERN, dac_id):
            raise KeyError(f"{dac_id!r} is not a valid dac_id")
        return self.dir / f"{dac_id}.json"

    def get(self, dac_id: str) -> DacRequest:
        path = self.path_for(dac_id)
        if not path.exists():
            known = ", ".join(self.list_ids()[:10]) or "none"
            raise KeyError(
                f"no request stored for DAC {dac_id!r} under {self.dir} (known: {known}); "
                "add one with `iv request add FILE` or the drop folder"
            )
        return DacRequest.model_validate_json(path.read_text(encoding="utf-8"))

    def put(
        self,
        request: DacRequest,
        base_dir: Path | None = None,
        confine: bool = False,
        warnings: list[str] | None = None,
    ) -> tuple[Path, bool]:
        """Store `request` (and its calibration and evaluation captures, found relative to
        `base_dir`);
        returns (path, created). Same content again is a no-op. What the captures' checks
        warn about is appended to `warnings` (see `ingest_calibration`).

        A different request under an existing `dac_id` is refused: the stored one may already
        have lineage, a UTID and a deployment attached to it.
        """
        path = self.path_for(request.dac_id)
        if request.calibration or request.evaluation:
            request = self.ingest_calibration(request, base_dir, confine, warnings)
        text = canonical_json(request.canonical_dict()).decode() + "\n"
        if path.exists():
            old = path.read_text(encoding="utf-8")
            if old == text:
                return path, False
            raise InputError(
                f"request for {request.dac_id}",
                [
                    f"dac_id: {request.dac_id!r} is already registered with different content "
                    f"({path}); choose a new dac_id"
                ],
            )
        atomic_write_text(path, text)
        return path, True

    def list_ids(self) -> list[str]:
        if not self.dir.exists():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json"))


@dataclass
class Accepted:
    source: Path
    moved_to: Path
    request: DacRequest
    created: bool
    warnings: list[str] = field(default_factory=list)  # also in `<name>.warnings.txt` beside it


@dataclass
class Rejected:
    source: Path
    moved_to: Path
    error_file: Path
    message: str


@dataclass
class DropOutcome:
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    remaining: int = 0  # files left for the next pass (bounded work per pass)


def _unique_target(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    stamp = time.strftime("%Y%m%dT%H%M%S")
    n = 1
    while True:
        candidate = folder / f"{Path(name).stem}.{stamp}.{n}{Path(name).suffix}"
        if not candidate.exists():
            return candidate
        n += 1


def pending_files(drop_dir: Path) -> list[Path]:
    """Files waiting in the drop folder, oldest first; hidden and partial files are skipped."""
    if not drop_dir.exists():
        return []
    files = [
        p
        for p in drop_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".part"))
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def process_drop_folder(drop_dir: Path, store: RequestStore, max_files: int = 50) -> DropOutcome:
    """Validate up to `max_files` dropped files; store good ones, move every file out.

    Order matters for crash safety: a request is stored (atomically) before its file moves
    to `accepted/`, and an error file is written before its file moves to `rejected/`; a
    crash in between leaves the file in the queue to be processed again, idempotently.
    """
    drop_dir = Path(drop_dir)
    files = pending_files(drop_dir)
    outcome = DropOutcome(remaining=max(0, len(files) - max_files))
    for src in files[:max_files]:
        notes: list[str] = []
        try:
            request = load_request_file(src)
            _, created = store.put(request, base_dir=src.parent, confine=True, warnings=notes)
        except InputError as err:
            rejected_dir = drop_dir / "rejected"
            rejected_dir.mkdir(parents=True, exist_ok=True)
            target = _unique_target(rejected_dir, src.name)
            error_file = target.with_name(target.name + ".error.txt")
            atomic_write_text(error_file, str(err) + "\n")
            os.replace(src, target)
            outcome.rejected.append(Rejected(src, target, error_file, str(err)))
            continue
        accepted_dir = drop_dir / "accepted"
        accepted_dir.mkdir(parents=True, exist_ok=True)
        target = _unique_target(accepted_dir, src.name)
        if notes:  # written before the move, as a rejected file's error is
            atomic_write_text(target.with_name(target.name + ".warnings.txt"), "\n".join(notes) + "\n")
        os.replace(src, target)
        outcome.accepted.append(Accepted(src, target, request, created, notes))
    return outcome
