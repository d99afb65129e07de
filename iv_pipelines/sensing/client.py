"""One client's DAC: device calibration, the LoRA adapter, its gate, its decision threshold
and the evidence each reported number rests on.

Data hygiene (by capture, never by window):
- a client's calibration captures are split per activity: with two or more real captures of
  an activity the last one is held out for evaluation (`eval`), the others calibrate and train
  (`train`); twin-generated stand-ins (`origin: simulated`) only ever calibrate and train;
- the device fit and the device context come from `train` captures only;
- the adapter trains on twin episodes of the client's room with the fitted device plus the
  first 70 % of each `train` capture's windows; the fall threshold is set on separate twin
  episodes and the last 30 % of those captures (less the windows that share packets with a
  training window); evidence is measured on further twin episodes
  (`simulation`) and on the `eval` captures (`client_device`);
- a request's `evaluation` captures (`test`: falls allowed, as short as one window) are
  evidence only: they never fit, train, set the threshold or choose between the adapter and
  the base model (the gate's paired test leaves them out), and are reported in `client_device`.
Falls are never asked for in calibration, so without evaluation captures fall recall is only
ever simulated evidence; real calibration evidence gives the false-alarm rate on real
walking/sitting and the presence decisions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from iv_pipelines.sensing.calibration import Calibration, DeviceFit, fit_device, resident_at
from iv_pipelines.sensing.context import CTX_DIM, context_vector
from iv_pipelines.sensing.device import DEFAULT_PRIOR
from iv_pipelines.sensing.features import (
    MAX_GAP_S,
    MIN_WINDOW_S,
    WINDOW_S,
    drop_phase,
    stretch_windows,
    windows_from_capture,
)
from iv_pipelines.sensing.intensity import DEFAULT_RECALL_COST
from iv_pipelines.sensing.twin import ACTIVITIES, Resident, Room, room_device

TRAIN_SHARE = 0.7  # of each train capture's windows; the rest set the fall threshold
REAL_HOP_S = 0.5
# threshold windows never share packets with the adapter's training windows: the first ones
# after the split overlap the last training window (2.0 s windows, 0.5 s hop) and are dropped
GUARD_WINDOWS = int(np.ceil(WINDOW_S / REAL_HOP_S)) - 1
DEFAULT_TARGET_FA = 0.02
# How much the client's calibration windows of an activity weigh in the adapter's training,
# against the twin's windows of that class (1.0: as much). It was 0.25 until 2026-12-06: on
# real walking the adapter then learned nearly nothing from the client's 20 s capture (the
# same session's other walking called fall 0.18 by the DAC, 0.16 by the uncalibrated base);
# at 1.0, 0.06 (6 windows fewer, none more: exact McNemar p = 0.03; `bench/walking_dev.py`,
# development data, with the calibration's runs still joined end to end; recorded apart since,
# 0.08 -> 0.00: docs/sensing.md). Cost, in the twin: no fall recall on devices whose motion shows as
# packet-to-packet noise (as the lab), 0.15 of it on body-scattering devices
# (`bench/fall_protocol.py`), where falls look like walking. docs/sensing.md has the numbers.
REAL_WEIGHT = 1.0


@dataclass
class RealCapture:
    name: str
    activity: str
    origin: str  # real | simulated
    split: str  # train | eval (held out, informs the gate) | test (a request's evaluation capture)
    amplitude_only: bool
    windows: np.ndarray  # (n, T, F), hop REAL_HOP_S (EVAL_HOP_S for `test` captures)
    seconds: float
    independent: bool = False  # windows share no packets (production feedback): no guard needed

    def summary(self) -> dict:
        return {
            "name": self.name,
            "activity": self.activity,
            "origin": self.origin,
            "split": self.split,
            "amplitude_only": self.amplitude_only,
            "windows": int(len(self.windows)),
            "seconds": round(self.seconds, 1),
        }


@dataclass
class ClientCalibration:
    fit: DeviceFit | None
    context: np.ndarray  # (CTX_DIM,), zeros without calibration
    amplitude_only: bool
    captures: list[RealCapture]
    resident: Resident
    warnings: list[str] = field(default_factory=list)

    @property
    def has_real_eval(self) -> bool:
        return any(c.split in ("eval", "test") and c.origin == "real" for c in self.captures)

    def to_dict(self) -> dict:
        return {
            "fit": self.fit.to_dict() if self.fit else None,
            "amplitude_only": self.amplitude_only,
            "captures": [c.summary() for c in self.captures],
            "context_activities": sorted({c.activity for c in self.captures if c.split == "train"}),
            "resident_walk_speed_ms": list(self.resident.walk_speed_ms),
            "warnings": self.warnings,
        }


def assign_splits(items: list[tuple[str, str]]) -> list[str]:
    """[(activity, origin)] in request order -> "train" / "eval" for each capture."""
    splits = ["train"] * len(items)
    for act in {a for a, _ in items}:
        real = [i for i, (a, o) in enumerate(items) if a == act and o == "real"]
        if len(real) >= 2:
            splits[real[-1]] = "eval"
    return splits


def calibrate_client(
    room: Room, resident: Resident, calibrations: list[tuple[Calibration, str]], seed: int = 0
) -> ClientCalibration:
    """`calibrations`: (capture, origin) pairs from the request, in order."""
    if not calibrations:
        return ClientCalibration(None, np.zeros(CTX_DIM, np.float32), False, [], resident)
    splits = assign_splits([(c.activity, origin) for c, origin in calibrations])
    amp_only = all(bool(c.capture.meta.get("amplitude_only")) for c, _ in calibrations)
    captures = [
        _real_capture(c, origin, split, amp_only, REAL_HOP_S, "calibration")
        for (c, origin), split in zip(calibrations, splits, strict=True)
    ]
    train = [c for (c, _), s in zip(calibrations, splits, strict=True) if s == "train"]
    fit = fit_device(train, room, resident, seed=seed)
    ctx = context_vector(
        {
            a: np.concatenate([c.windows for c in captures if c.split == "train" and c.activity == a])
            for a in {c.activity for c in captures if c.split == "train"}
        }
    )
    res = resident_at(resident, fit.walk_speed_ms)
    return ClientCalibration(fit, ctx, amp_only, captures, res, list(fit.warnings))


EVAL_HOP_S = 1.0  # /v1/predict's default hop: evaluation windows are the ones the capsule decides


def evaluation_captures(evaluations: list[Calibration], amplitude_only: bool) -> list[RealCapture]:
    """A request's evaluation captures (split `test`), windowed as the capsule windows what it
    serves by default (`stretch_windows` at EVAL_HOP_S: no window across a silence, one
    shorter window for a stretch of 1.0-2.0 s, such as a fall recorded on its own). Raises
    ValueError naming a capture with no window."""
    return [
        _real_capture(
            c,
            "real",
            "test",
            amplitude_only or bool(c.capture.meta.get("amplitude_only")),
            EVAL_HOP_S,
            "evaluation",
        )
        for c in evaluations
    ]


def _real_capture(c: Calibration, origin: str, split: str, amp: bool, hop_s: float, kind: str) -> RealCapture:
    """One capture's windows, cut as the capsule cuts what it serves: no window straddles a
    gap (stretch_windows); a capture with no window is a ValueError naming it."""
    w = stretch_windows(c.capture.csi, c.capture.t_s, hop_s, amp)[0]
    if not len(w):
        raise ValueError(
            f"{kind} capture {c.name or c.activity!r}: no stretch of {MIN_WINDOW_S:.1f} s without a "
            f"silence over {MAX_GAP_S} s, so no window ({len(c.capture.t_s)} packets)"
        )
    span = float(c.capture.t_s[-1] - c.capture.t_s[0])
    return RealCapture(c.name or c.activity, c.activity, origin, split, amp, w, span)


def room_layouts(room: Room, n: int, seed: int) -> list[Room]:
    """`room` and n - 1 other layouts of the same size: the request declares the room's size,
    not where the furniture, the access point and the sensor stand, so an adapter trained (and
    a threshold set) in one guessed layout learns that layout; with the first twin-2.2
    adapters, sitting down in the real layout was called a fall 10 % of the time where the
    guessed layout's windows had said 0 %."""
    rng = np.random.default_rng([int(seed), 404])
    size = (room.width_m, room.depth_m, room.height_m)
    return [room] + [Room.random(rng, size=size) for _ in range(n - 1)]


def exponent_variants(dev, walk_speed_ms: float, n: int = 4) -> list:
    """The fitted device with its motion-noise exponent spread over the prior's range (falls
    are never captured, so how much more a fall disturbs this device than walking is not
    measurable): each variant's `motion_noise` is rescaled so that walking at the fitted
    speed keeps the fitted noise."""
    from dataclasses import replace

    lo, hi = DEFAULT_PRIOR.motion_exponent
    v = float(np.clip(walk_speed_ms, 0.1, 3.0))
    return [
        replace(
            dev,
            motion_exponent=float(g),
            motion_noise=float(dev.motion_noise * v ** (dev.motion_exponent - g)),
        )
        for g in np.linspace(lo, hi, n)
    ]


@dataclass
class Sets:
    x: np.ndarray
    y: np.ndarray
    source: np.ndarray  # "sim" | "real" per window
    home: np.ndarray | None = None  # the simulated home (layout, device) per window; -1 for captures
    test: np.ndarray | None = None  # windows of evaluation-only captures (None: none)

    def choosable(self) -> np.ndarray:
        """The windows a choice may be made on: all but the evaluation-only ones."""
        return np.ones(len(self.y), bool) if self.test is None else ~self.test


def _stack(parts: list[tuple]) -> Sets:
    """parts: (x, y, source) for captures, (x, y, source, home) for simulated windows."""
    parts = [p for p in parts if len(p[0])]
    return Sets(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([np.full(len(p[0]), p[2]) for p in parts]),
        np.concatenate([p[3] if len(p) > 3 else np.full(len(p[0]), -1) for p in parts]),
    )


def _sim_set(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from iv_pipelines.sensing.datasets import windows_dataset

    rooms, devices, resident, n, seed = args
    per = max(1, int(np.ceil(n / len(rooms))))
    x, y, _ = windows_dataset(rooms, per, seed, resident, devices=devices, contexts=None)
    # windows_dataset keeps each home's windows together, in home order
    return x, y, np.arange(len(y)) // (len(ACTIVITIES) * per)


WALK_REFERENCE_S = 20.0  # the twin's stand-in for a client's walking calibration capture


def twin_walk_references(
    rooms: list[Room], devices: list, resident: Resident, seed: int, amplitude_only: bool
) -> np.ndarray:
    """Per simulated home, the median intensity of a plain-walking calibration simulated
    there (as a client records one): what the home's fall windows are measured against.
    Four 20 s episodes: ~0.4 s on one core."""
    from iv_pipelines.sensing.intensity import walking_reference
    from iv_pipelines.sensing.twin import CALIBRATION_VARIANT, simulate_episode, stable_seed

    out = []
    for i, (room, dev) in enumerate(zip(rooms, devices, strict=True)):
        ep = simulate_episode(
            room,
            "walk",
            seed=stable_seed(3, seed, i),
            duration_s=WALK_REFERENCE_S,
            device=dev,
            resident=resident,
            variant=CALIBRATION_VARIANT.get("walk"),
        )
        w = windows_from_capture(ep.csi, ep.t_s, hop_s=REAL_HOP_S, amplitude_only=amplitude_only)
        out.append(walking_reference(w) or 0.0)
    return np.asarray(out)


def client_homes(room: Room, cal: ClientCalibration, seed: int) -> tuple[list[Room], list]:
    """The simulated homes (room layout, device) every client set is drawn from: the fitted
    device's exponent variants in as many layouts of the declared room, or without
    calibration devices from the prior."""
    if cal.fit is not None:
        devices = exponent_variants(
            cal.fit.device, cal.fit.walk_speed_ms or float(np.mean(cal.resident.walk_speed_ms))
        )
    else:  # no calibration: the client's device is unknown, so cover the prior
        devices = [room_device(seed, i, DEFAULT_PRIOR) for i in range(8)]
    return room_layouts(room, len(devices), seed), devices


def has_walking_calibration(cal: ClientCalibration) -> bool:
    return any(c.activity == "walk" and c.split == "train" for c in cal.captures)


def real_repeats(captures: list[RealCapture], n_sim_per_class: int, weight: float | None = None) -> list[int]:
    """How many times each capture's training windows enter the adapter's training set: an
    activity's captured training windows weigh together `weight` (REAL_WEIGHT) times the
    `n_sim_per_class` simulated windows of its class, at least once each (0 for `eval`
    captures, which never train)."""
    weight = REAL_WEIGHT if weight is None else weight
    n_train: dict[str, int] = {}
    for c in captures:
        if c.split == "train":
            n_train[c.activity] = n_train.get(c.activity, 0) + int(round(TRAIN_SHARE * len(c.windows)))
    return [
        max(1, int(round(weight * n_sim_per_class / max(n_train[c.activity], 1))))
        if c.split == "train"
        else 0
        for c in captures
    ]


def client_sets(
    room: Room,
    cal: ClientCalibration,
    per_activity: int,
    eval_per_activity: int,
    seed: int,
    workers: int = 1,
    real_weight: float | None = None,
) -> tuple[Sets, Sets, Sets]:
    """(train, threshold, evaluation) windows for one client, as the module docstring says;
    the three simulated sets in `workers` processes (the same windows either way)."""
    rooms, devices = client_homes(room, cal, seed)
    jobs = [
        (rooms, devices, cal.resident, per_activity, seed + 101),
        (rooms, devices, cal.resident, eval_per_activity, seed + 202),
        (rooms, devices, cal.resident, max(eval_per_activity // 2, 4), seed + 303),
    ]
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, 3), mp_context=mp.get_context("spawn")) as ex:
            train_xy, eval_xy, thr_xy = ex.map(_sim_set, jobs)
    else:
        train_xy, eval_xy, thr_xy = map(_sim_set, jobs)
    train_parts = [(train_xy[0], train_xy[1], "sim", train_xy[2])]
    thr_parts = [(thr_xy[0], thr_xy[1], "sim", thr_xy[2])]
    eval_parts = [(eval_xy[0], eval_xy[1], "sim", eval_xy[2])]
    repeats = real_repeats(cal.captures, per_activity, real_weight)
    test_windows = []
    for c, reps in zip(cal.captures, repeats, strict=True):
        y = np.full(len(c.windows), ACTIVITIES.index(c.activity))
        if c.split == "test":
            test_windows.append((c.windows, y, "real"))
            continue
        if c.split == "eval":
            eval_parts.append((c.windows, y, "real"))
            continue
        k = int(round(TRAIN_SHARE * len(c.windows)))
        # "real" only for real-origin captures; twin-generated stand-ins keep their own label
        src = "real" if c.origin == "real" else "simulated capture"
        train_parts.append((np.repeat(c.windows[:k], reps, axis=0), np.repeat(y[:k], reps), src))
        guard = 0 if c.independent else GUARD_WINDOWS
        thr_parts.append((c.windows[k + guard :], y[k + guard :], src))
    n_choosable = sum(len(p[0]) for p in eval_parts)
    out = [_stack(p) for p in (train_parts, thr_parts, eval_parts + test_windows)]
    if test_windows:  # evaluation-only windows come last in the evaluation set
        out[2].test = np.arange(len(out[2].y)) >= n_choosable
    if cal.amplitude_only:
        for s in out:
            drop_phase(s.x)
    return out[0], out[1], out[2]


def threshold_masks(th: Sets) -> dict[str, np.ndarray]:
    """The non-fall threshold windows per source that set the fall threshold. Real captures of
    the client's device speak for their own activity: where the client recorded real walking
    (or sitting, or an empty room), the twin's windows of that activity are left out of the
    threshold set (the twin's stand-in for a device it only fitted, in a room whose layout it
    guessed, was the most fall-like walking the threshold had to clear); activities without a
    real capture are judged on the twin."""
    from iv_pipelines.sensing.evaluate import FALL

    nonfall = th.y != FALL
    real = set(np.unique(th.y[nonfall & (th.source == "real")]).tolist())
    out = {}
    for src in map(str, np.unique(th.source)):
        m = nonfall & (th.source == src)
        if src == "sim" and real:
            m &= ~np.isin(th.y, sorted(real))
        if m.any():
            out[src] = m
    return out


@dataclass
class ClientResult:
    model: object  # the trained peft-wrapped adapter (shipped merged when selected == "adapter")
    selected: str  # adapter | base
    why: str
    gate: dict
    thresholds: dict[str, float]  # per candidate model
    evidence: dict
    losses: list[float]
    train_seconds: float
    trainable_params: int
    total_params: int
    n_train: int
    confusion: np.ndarray
    base_metrics: dict
    adapter_metrics: dict
    # what drift is measured against: the threshold-set windows (the client's simulated room
    # with its fitted device, and its calibration captures) summarised per feature, and the
    # shipped model's decisions on them
    reference_features: np.ndarray | None = None
    reference_decisions: dict[str, int] | None = None
    # the Text-to-LoRA start (issue #20): {"generated", "trained"} decision metrics on the
    # simulated client room, both at the default decision
    zero_shot_metrics: dict | None = None
    # the fall-intensity check (intensity.py): {"reference", "factor"} or None, and what it did
    intensity_check: dict | None = None
    intensity_report: dict | None = None


def _import_peft() -> None:
    import contextlib

    with contextlib.suppress(Exception):  # a failure is reported by the real import in add_lora
        import peft  # noqa: F401


def _proba(model, x, ctx):
    from iv_pipelines.sensing.model import predict_proba

    return predict_proba(model, x, ctx=ctx)


def train_client_adapter(
    base_dir,
    room: Room,
    cal: ClientCalibration,
    per_activity: int = 120,
    eval_per_activity: int = 150,
    epochs: int = 10,
    seed: int = 0,
    rank: int = 4,
    lr: float = 1e-3,
    target_fa: float = DEFAULT_TARGET_FA,
    log=lambda _m: None,
    workers: int = 1,
    init_state: dict | None = None,
    intensity_recall_cost: float | None = DEFAULT_RECALL_COST,
    real_weight: float | None = None,
) -> ClientResult:
    import torch

    from iv_pipelines.sensing.evaluate import FALL, choose_fall_threshold, confusion, decide, decision_metrics
    from iv_pipelines.sensing.gate import compare, wilson
    from iv_pipelines.sensing.model import add_lora, load_model, train

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    # importing peft (and the transformers it pulls in) takes ~5 s on 2 cores; it overlaps
    # with the simulation, whose worker processes leave this one waiting
    warm = threading.Thread(target=_import_peft, name="import-peft", daemon=True)
    warm.start()
    tr, th, ev = client_sets(room, cal, per_activity, eval_per_activity, seed, workers, real_weight)
    warm.join()
    log(
        f"client sets in {time.perf_counter() - t0:.1f} s: {len(tr.y)} training windows "
        f"({int((tr.source != 'sim').sum())} from the calibration captures), {len(th.y)} threshold, "
        f"{len(ev.y)} evaluation "
        f"({int((ev.source == 'real').sum())} real, held out by capture)"
    )
    ctx = cal.context
    base, _ = load_model(base_dir)
    p_base_th, p_base_ev = _proba(base, th.x, ctx), _proba(base, ev.x, ctx)
    model = add_lora(base, r=rank)
    zero_shot = None
    if init_state is not None:  # a generated adapter (Text-to-LoRA) instead of peft's zero start
        from iv_pipelines.sensing.model import load_peft_state

        load_peft_state(model, init_state)
        sim = ev.source == "sim"
        # at the default decision (0.5), like the trained adapter below: the same rule for both
        zero_shot = {
            "generated": decision_metrics(_proba(model, ev.x, ctx)[sim], ev.y[sim], 0.5, "client_room_")
        }
        log(
            "generated adapter before training: accuracy "
            f"{zero_shot['generated'].get('client_room_accuracy', float('nan')):.3f} on the simulated client room"
        )
    rep = train(
        model,
        tr.x,
        tr.y,
        epochs=epochs,
        lr=lr,
        seed=seed,
        log=log,
        ctx=np.broadcast_to(ctx, (len(tr.y), CTX_DIM)).copy(),
        phase_dropout=1.0 if cal.amplitude_only else 0.3,
    )
    p_ad_th, p_ad_ev = _proba(model, th.x, ctx), _proba(model, ev.x, ctx)
    if zero_shot is not None:
        sim = ev.source == "sim"
        zero_shot["trained"] = decision_metrics(p_ad_ev[sim], ev.y[sim], 0.5, "client_room_")

    masks = threshold_masks(th)

    def threshold(p):
        return choose_fall_threshold([p[m, FALL] for m in masks.values()], target_fa)

    thr = {"base": threshold(p_base_th), "adapter": threshold(p_ad_th)}

    def threshold_fa(p, t):
        return {src: float((p[m, FALL] >= t).mean()) for src, m in masks.items()}

    th_fa = {"base": threshold_fa(p_base_th, thr["base"]), "adapter": threshold_fa(p_ad_th, thr["adapter"])}
    # the paired test runs on the held-out windows a choice may use: never on a request's
    # evaluation captures, which only report what the chosen model does
    g = ev.choosable()
    correct = {k: decide(p[g], thr[k]) == ev.y[g] for k, p in (("base", p_base_ev), ("adapter", p_ad_ev))}
    nll = {
        k: -np.log(np.clip(p[g][np.arange(int(g.sum())), ev.y[g]], 1e-9, 1))
        for k, p in (("base", p_base_ev), ("adapter", p_ad_ev))
    }
    cmp = compare(correct["adapter"], correct["base"], nll["adapter"], nll["base"], seed=seed)
    if cmp.verdict == "better":
        selected, why = "adapter", "the adapter is significantly better: " + cmp.sentence()
    else:
        a, b = (cmp.accuracy_a, -cmp.nll_diff), (cmp.accuracy_b, 0.0)
        selected = "adapter" if a >= b else "base"
        why = (
            f"not significantly better ({cmp.verdict}); shipping the {selected}, the better point estimate: "
            + cmp.sentence()
        )
    p_sel = p_ad_ev if selected == "adapter" else p_base_ev
    t_sel = thr[selected]
    p_sel_th = p_ad_th if selected == "adapter" else p_base_th
    refs = None
    if intensity_recall_cost is not None and has_walking_calibration(cal):
        refs = twin_walk_references(
            *client_homes(room, cal, seed), cal.resident, seed + 404, cal.amplitude_only
        )
    check, report = fall_intensity_check(cal, (tr, th), ev, p_sel, t_sel, refs, intensity_recall_cost)
    allow_ev = report.pop("_allow", None)
    allow_th = report.pop("_allow_choose_on", [None, None])[1]
    log("fall-intensity check: " + report["why"])
    evidence = evidence_report(p_sel, ev, t_sel, cal, room, target_fa, allow_ev)
    evidence["decision"]["intensity_check"] = check.to_dict() if check is not None else None
    evidence["decision"]["threshold_set_false_alarm_rate"] = th_fa[selected]
    evidence["decision"]["target_reachable"] = all(v <= target_fa + 1e-9 for v in th_fa[selected].values())
    # how far each threshold set can vouch for the target: its windows and the Wilson 95 %
    # upper bound of its false-alarm rate (0 of 8 windows bounds the rate only below 0.32)
    n_th = {src: int(m.sum()) for src, m in masks.items()}
    upper = {src: wilson(round(r * n_th[src]), n_th[src])[1] for src, r in th_fa[selected].items()}
    evidence["decision"]["threshold_set_windows"] = n_th
    evidence["decision"]["threshold_set_false_alarm_upper95"] = upper
    evidence["decision"]["certified"] = all(u <= target_fa + 1e-9 for u in upper.values())
    for src, u in upper.items():
        if u > target_fa + 1e-9:
            log(
                f"the {n_th[src]} non-fall threshold windows from {src} bound false alarms only below "
                f"{u:.3f} (95 %), not {target_fa:.3f}: longer calibration captures certify more"
            )
    if not evidence["decision"]["target_reachable"]:
        log(
            f"the fall threshold cannot bring false alarms to {target_fa:.3f} on the threshold set "
            f"({th_fa[selected]}); threshold capped at {t_sel:.2f}"
        )
    m_base = decision_metrics(
        p_base_ev[ev.source == "sim"], ev.y[ev.source == "sim"], thr["base"], "client_room_"
    )
    m_ad = decision_metrics(
        p_ad_ev[ev.source == "sim"], ev.y[ev.source == "sim"], thr["adapter"], "client_room_"
    )
    from iv_pipelines.sensing.drift import summarise

    decided = decide(p_sel_th, t_sel, allow_th)
    return ClientResult(
        reference_features=summarise(th.x).astype(np.float32),
        reference_decisions={c: int((decided == k).sum()) for k, c in enumerate(ACTIVITIES)},
        model=model,
        selected=selected,
        why=why,
        gate=cmp.to_dict(),
        thresholds=thr,
        evidence=evidence,
        losses=rep.losses,
        train_seconds=rep.seconds,
        trainable_params=rep.trainable_params,
        total_params=rep.total_params,
        n_train=len(tr.y),
        confusion=confusion(ev.y, decide(p_sel, t_sel, allow_ev)),
        base_metrics=m_base,
        adapter_metrics=m_ad,
        zero_shot_metrics=zero_shot,
        intensity_check=check.to_dict() if check is not None else None,
        intensity_report=report,
    )


def fall_intensity_check(
    cal: ClientCalibration,
    choose_on: tuple[Sets, ...],
    ev: Sets,
    p_ev: np.ndarray,
    threshold: float,
    refs: np.ndarray | None,
    recall_cost: float | None,
):
    """The DAC's fall-intensity check (intensity.py) and what it does on the evaluation
    windows: (IntensityCheck or None, report). The factor is chosen on the twin fall windows
    of the `choose_on` sets (training and threshold: never the evaluation windows); the report
    gives, with and without the check, the twin's fall recall and walking false alarms on the
    held-out twin windows and the false alarms on the client's held-out real captures; under
    "_allow" and "_allow_choose_on" (popped by the caller) which evaluation windows, and which
    windows of each `choose_on` set, may be called fall."""
    from iv_pipelines.sensing.evaluate import EMPTY, FALL, decide
    from iv_pipelines.sensing.intensity import (
        STILL_CAP,
        IntensityCheck,
        choose_factor,
        walking_reference,
        window_intensity,
        window_stillness,
    )

    if recall_cost is None:
        return None, {"on": False, "why": "off for this DAC (intensity_recall_cost: null)"}
    if refs is None or not has_walking_calibration(cal):
        return None, {"on": False, "why": "no walking calibration capture: no reference, no check"}
    walk = [c.windows for c in cal.captures if c.activity == "walk" and c.split == "train"]
    ref_real = walking_reference(np.concatenate(walk))
    twin_ref = np.maximum(np.asarray(refs, float), 1e-9)

    def ratios(s: Sets) -> np.ndarray:
        """Each window's intensity over its walking reference: its simulated home's, or the
        client's calibration for captured windows."""
        inten = window_intensity(s.x)
        sim = s.home >= 0
        ref = np.where(sim, twin_ref[np.clip(s.home, 0, None)], max(ref_real or 0.0, 1e-9))
        return inten / ref

    r_on = [ratios(s) for s in choose_on]  # each set's intensities computed once
    falls = [r[(s.source == "sim") & (s.y == FALL)] for r, s in zip(r_on, choose_on, strict=True)]
    factor, why = choose_factor(np.concatenate(falls), recall_cost)
    # the stillness check (intensity.py): only with an empty-room capture besides the walking,
    # chosen on the same twin windows, falls and all non-empty ones
    s_on = [np.zeros(len(s.y)) for s in choose_on]  # still scores, computed when the check can be on
    if any(c.activity == "empty" and c.split == "train" for c in cal.captures):
        s_on = [np.maximum(window_stillness(s.x), r) for r, s in zip(r_on, choose_on, strict=True)]
        still_f = [st[(s.source == "sim") & (s.y == FALL)] for st, s in zip(s_on, choose_on, strict=True)]
        still_m = [st[(s.source == "sim") & (s.y != EMPTY)] for st, s in zip(s_on, choose_on, strict=True)]
        kw = {"unit": " still score", "check": "stillness check"}
        f_fall, why_f = choose_factor(np.concatenate(still_f), recall_cost, "twin fall windows", **kw)
        f_move, why_m = choose_factor(np.concatenate(still_m), recall_cost, "twin non-empty windows", **kw)
        still = float(min(f_fall, f_move, STILL_CAP))
        still_why = (
            f"still factor {still:.2f}, the lowest of the falls' {f_fall:.2f}, all non-empty windows' "
            f"{f_move:.2f} and the cap {STILL_CAP:g} ({why_f}; {why_m})"
            if still > 0
            else f"no stillness check ({why_f if f_fall <= 0 else why_m})"
        )
    else:
        still, still_why = 0.0, "no stillness check (no empty-room calibration capture)"
    r_ev = ratios(ev)
    report = {
        "on": factor > 0 or still > 0,
        "why": why + "; " + still_why,
        "recall_cost": recall_cost,
        "reference": ref_real,
        "factor": factor,
        "still_factor": still,
        "twin_walking_references": [round(float(v), 5) for v in twin_ref],
    }

    def verdicts(r: np.ndarray, st: np.ndarray) -> np.ndarray:  # IntensityCheck.allows_fall
        out = (r >= factor).astype(np.int8)
        out[st < still] = -1
        return out

    allow_ev = verdicts(r_ev, np.maximum(window_stillness(ev.x), r_ev) if still > 0 else r_ev)
    with_c, without = decide(p_ev, threshold, allow_ev), decide(p_ev, threshold)
    sim, real = ev.source == "sim", ev.source == "real"
    walk_i = ACTIVITIES.index("walk")
    for name, mask in (
        ("simulated_fall_recall", sim & (ev.y == FALL)),
        ("simulated_walking_called_fall", sim & (ev.y == walk_i)),
        ("simulated_nonfall_called_fall", sim & (ev.y != FALL)),
        ("client_device_called_fall", real & (ev.y != FALL)),
    ):
        if mask.any():
            report[name] = {
                "without": float((without[mask] == FALL).mean()),
                "with": float((with_c[mask] == FALL).mean()),
                "windows": int(mask.sum()),
            }
    for name, mask, called_empty in (
        ("simulated_nonempty_called_empty", sim & (ev.y != EMPTY), True),
        ("client_device_empty_called_nonempty", real & (ev.y == EMPTY), False),
    ):
        if mask.any():
            report[name] = {
                "without": float(((without[mask] == EMPTY) == called_empty).mean()),
                "with": float(((with_c[mask] == EMPTY) == called_empty).mean()),
                "windows": int(mask.sum()),
            }
    if factor <= 0 and still <= 0:
        return None, report
    report["_allow"] = allow_ev
    report["_allow_choose_on"] = [verdicts(r, st) for r, st in zip(r_on, s_on, strict=True)]
    return IntensityCheck(float(ref_real), factor, still), report


def evidence_report(
    proba,
    ev: Sets,
    threshold: float,
    cal: ClientCalibration,
    room: Room,
    target_fa: float,
    allow_fall: np.ndarray | None = None,
) -> dict:
    """What each reported number rests on (DESIGN §2): `simulation` always, `client_device`
    when held-out real captures exist; `validated_on` says which one decides."""
    from iv_pipelines.sensing.evaluate import decision_metrics

    sim = ev.source == "sim"
    device = (
        "fitted to the client's calibration captures" if cal.fit else "drawn from the prior (no calibration)"
    )
    out = {
        "decision": {"fall_threshold": threshold, "target_false_alarm_rate": target_fa},
        "simulation": {
            "data": f"simulated client room ({room.width_m:.1f} x {room.depth_m:.1f} m), twin device {device}; "
            f"{int(sim.sum())} held-out windows, falls included",
            **decision_metrics(proba[sim], ev.y[sim], threshold, allow_fall=_rows(allow_fall, sim)),
        },
        "client_device": None,
        "public_real": None,
    }
    real = ev.source == "real"
    if real.any():
        held = [c for c in cal.captures if c.split == "eval"]
        tests = [c for c in cal.captures if c.split == "test"]
        parts = []
        if held:
            parts.append(f"held out by capture ({', '.join(c.name for c in held)})")
        if tests:
            parts.append(
                f"{len(tests)} evaluation-only capture(s) of the request ({_activity_counts(tests)})"
            )
        if any(c.activity == "fall" for c in tests):
            falls = "falls included (the request's evaluation captures)"
        elif any(c.activity == "fall" for c in held):
            falls = "falls included (confirmed by caregivers)"
        else:
            falls = "no falls (falls are never captured for calibration)"
        allow_real = _rows(allow_fall, real)
        out["client_device"] = {
            "data": f"real captures of the client's device: {'; '.join(parts)}; {int(real.sum())} windows; {falls}",
            **decision_metrics(proba[real], ev.y[real], threshold, allow_fall=allow_real),
            **decision_intervals(proba[real], ev.y[real], threshold, allow_real),
        }
        if tests:
            out["client_device"]["per_capture"] = per_capture_decisions(
                tests, proba[ev.test], threshold, _rows(allow_fall, ev.test)
            )
    out["validated_on"] = "client_device" if real.any() else "simulation_only"
    return out


def _rows(a: np.ndarray | None, m: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[m]


def _activity_counts(captures: list[RealCapture]) -> str:
    n: dict[str, int] = {}
    for c in captures:
        n[c.activity] = n.get(c.activity, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(n.items()))


def decision_intervals(proba, y, threshold: float, allow_fall=None) -> dict:
    """Wilson 95 % intervals of the fall recall and the fall false-alarm rate of these
    decisions (windows counted as independent: windows of one capture are not, so the
    per-capture counts beside them are the sturdier figure)."""
    from iv_pipelines.sensing.evaluate import FALL, decide
    from iv_pipelines.sensing.gate import wilson

    pred = decide(proba, threshold, allow_fall)
    out = {}
    fall = np.asarray(y) == FALL
    if fall.any():
        out["recall_fall_interval95"] = list(wilson(int((pred[fall] == FALL).sum()), int(fall.sum())))
    if (~fall).any():
        out["fall_false_alarm_rate_interval95"] = list(
            wilson(int((pred[~fall] == FALL).sum()), int((~fall).sum()))
        )
    return out


def per_capture_decisions(captures: list[RealCapture], proba, threshold: float, allow_fall=None) -> dict:
    """Per activity, the evaluation captures with at least one window called fall (for fall
    captures: detected; for the others: a false alarm), with a Wilson 95 % interval; `proba`
    holds the captures' windows in order."""
    from iv_pipelines.sensing.evaluate import FALL, decide
    from iv_pipelines.sensing.gate import wilson

    pred = decide(proba, threshold, allow_fall)
    hit: dict[str, list[bool]] = {}
    i = 0
    for c in captures:
        n = len(c.windows)
        hit.setdefault(c.activity, []).append(bool((pred[i : i + n] == FALL).any()))
        i += n
    if i != len(pred):
        raise ValueError(f"{len(pred)} decisions for {i} windows of the evaluation captures")
    return {
        act: {
            "captures": len(h),
            "any_window_called_fall": int(sum(h)),
            "interval95": list(wilson(int(sum(h)), len(h))),
        }
        for act, h in sorted(hit.items())
    }


def uncalibrated(resident: Resident) -> ClientCalibration:
    return ClientCalibration(None, np.zeros(CTX_DIM, np.float32), False, [], resident)
