"""Issue #13: "a fall must disturb the channel more than the resident's own walking" — the
analysis behind the DAC's fall-intensity check (`iv_pipelines/sensing/intensity.py`) and its
effect on real development captures.

Intensity of a window = the mean over subcarriers of the temporal standard deviation of the
model's relative-amplitude features (valid samples only), divided by the median of the same
over the windows of a walking calibration capture of the same device.

- **espectre (real, development data)**: per chip, the first movement capture plays the
  walking calibration; on the second, the windows the base model (conditioned on that
  calibration) calls fall, and their intensity ratios — all of them are false alarms. Then the
  DAC's own path (device fit, adapter, threshold and intensity check at the lifecycle's
  budget; calibrate on one empty/movement pair, score the other): windows called fall with
  and without the check.
- **Shadow Twin (SIMULATED)**: 4 labs as in `bench/fall_protocol.py` (amplitude-only legacy
  LLTF at 100 Hz, a 20 s walking calibration capture), fall clips and 10 s walking captures:
  the share of falls and of walking windows at or above each ratio.

The issue's lab reports falls at 1.76x walking's spread on its real captures; this bench shows
whether the twin and the real development captures agree with a rule built on it.

    .venv/bin/python bench/fall_intensity.py [--base-model DIR]   # default: make demo's base model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import demo_base_model_dir  # noqa: E402

DEFAULT_BASE = demo_base_model_dir()
ESPECTRE = REPO.parent / "shared" / "data" / "csi" / "francescopace__espectre" / "micro-espectre" / "data"


def intensity(w: np.ndarray) -> np.ndarray:
    from iv_pipelines.sensing.intensity import window_intensity

    return window_intensity(w)


def dac_path(base_dir: Path) -> None:
    """espectre through the DAC's own path, both ways per chip and input (calibrate on one
    empty/movement pair: device fit, adapter, threshold and the DAC's intensity check; score
    the other pair): windows called fall with and without the check. No falls were recorded,
    so every one is a false alarm."""
    from iv_pipelines.sensing.client import train_client_adapter
    from iv_pipelines.sensing.evaluate import FALL, decide
    from iv_pipelines.sensing.intensity import IntensityCheck, allowed
    from iv_pipelines.sensing.model import load_model, predict_proba
    from iv_pipelines.sensing.realeval import capture_windows, espectre_captures, pair_calibration

    print("\nespectre (real) through the DAC's path: calibrate on one empty/movement pair, score the other")
    print(
        "| chip | input | intensity factors (2 folds) | windows scored | called fall without the check | with it |"
    )
    print("|---|---|---|---|---|---|")
    tot = np.zeros(3, int)
    whole = espectre_captures(ESPECTRE, baseline_warmup=0)  # calibration: files whole
    for chip, d in espectre_captures(ESPECTRE).items():  # scored: baselines less the warm-up
        for mode in ("iq", "amp52"):
            n = without = with_ = 0
            factors = []
            for i in range(2):
                room, cal = pair_calibration(whole[chip], mode, i)
                res = train_client_adapter(base_dir, room, cal, workers=2)  # the lifecycle's defaults
                model = res.model if res.selected == "adapter" else load_model(base_dir)[0]
                thr = res.thresholds[res.selected]
                chk = IntensityCheck.from_dict(res.intensity_check)
                factors.append(chk.factor if chk else 0.0)
                x = np.concatenate(
                    [capture_windows(d["baseline"][i], mode), capture_windows(d["movement"][i], mode)]
                )
                p = predict_proba(model, x, ctx=cal.context)
                n += len(x)
                without += int((decide(p, thr) == FALL).sum())
                with_ += int((decide(p, thr, allowed(chk, x)) == FALL).sum())
            tot += (n, without, with_)
            print(f"| {chip} | {mode} | {factors[0]:.2f}, {factors[1]:.2f} | {n} | {without} | {with_} |")
    print(f"all chips: {tot[1]} of {tot[0]} windows called fall without the check, {tot[2]} with it")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-model", type=Path, default=DEFAULT_BASE)
    ap.add_argument("--labs", type=int, default=4)
    a = ap.parse_args()
    from iv_pipelines.sensing.context import context_vector
    from iv_pipelines.sensing.evaluate import FALL
    from iv_pipelines.sensing.model import load_model, predict_proba
    from iv_pipelines.sensing.realeval import capture_windows, espectre_captures

    if not (a.base_model / "model.safetensors").is_file():
        print(f"SKIPPED: no base model at {a.base_model}: run make demo first")
        return 0
    base, _ = load_model(a.base_model)
    if ESPECTRE.is_dir():
        print("espectre (real, GPL-3.0, read in place): movement windows the base model calls fall")
        print(
            "| chip | input | calibration median | windows scored | called fall | their intensity / calibration median |"
        )
        print("|---|---|---|---|---|---|")
        ratios = []
        for chip, d in espectre_captures(ESPECTRE, baseline_warmup=0).items():  # context only
            for mode in ("iq", "amp52"):
                mov = [capture_windows(c, mode) for c in d["movement"]]
                emp = [capture_windows(c, mode) for c in d["baseline"]]
                med = float(np.median(intensity(mov[0])))
                p = predict_proba(base, mov[1], ctx=context_vector({"walk": mov[0], "empty": emp[0]}))
                called = p[:, FALL] >= 0.5
                r = intensity(mov[1])[called] / med
                ratios += list(r)
                print(
                    f"| {chip} | {mode} | {med:.3f} | {len(mov[1])} | {int(called.sum())} | "
                    f"{', '.join(f'{x:.2f}' for x in r) or '-'} |"
                )
        if ratios:
            print(
                f"false alarms below 1.0x the calibration median: {sum(x < 1.0 for x in ratios)} of {len(ratios)}"
            )
        dac_path(a.base_model)
    else:
        print(f"espectre captures not found at {ESPECTRE}: real part skipped")

    from fall_protocol import as_amplitude_csv, lab_test_sets

    from iv_pipelines.runtime.predictor import windows
    from iv_pipelines.sensing.device import DECLARED_RANGES, DEFAULT_PRIOR
    from iv_pipelines.sensing.twin import RESIDENTS, Room, simulate_episode

    print(f"\nShadow Twin (SIMULATED), {a.labs} labs, amplitude-only at 100 Hz, 20 s walking calibration")
    print(
        "devices: `prior` (the whole device prior) or `white` (motion noise from the issue's lab, as bench/fall_protocol.py --profile white)"
    )
    print("| devices | resident | ratio | falls at or above (clip max) | walking windows at or above |")
    print("|---|---|---|---|---|")
    for profile, name in (("prior", "elderly"), ("prior", "adult"), ("white", "elderly"), ("white", "adult")):
        res = RESIDENTS[name]
        fr, wr = [], []
        for lab in range(a.labs):
            rng = np.random.default_rng(7000 + lab)
            room, dev = Room.random(rng), DEFAULT_PRIOR.sample(rng, name=f"lab-{lab}")
            if profile == "white":
                lo, hi = DECLARED_RANGES["motion_noise"]
                noise = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
                dev = type(dev)(**(dev.to_dict() | {"rate_hz": 100.0, "motion_noise": noise}))
            cal = as_amplitude_csv(
                simulate_episode(room, "walk", 9000 + lab, 20.0, dev, res, variant="walking")
            )
            med = float(np.median(intensity(windows(cal, hop_s=1.0, amplitude_only=True)[0])))
            sets = lab_test_sets(room, dev, res, 7100 + lab * 1000, 10, 3)
            fr += [intensity(windows(c, hop_s=1.0, amplitude_only=True)[0]).max() / med for c in sets["fall"]]
            for c in sets["walk"]:
                wr += list(intensity(windows(c, hop_s=1.0, amplitude_only=True)[0]) / med)
        fr, wr = np.array(fr), np.array(wr)
        for f in (0.8, 1.0, 1.2, 1.5):
            print(
                f"| {profile} | {name} | {f:.1f} | {np.mean(fr >= f):.2f} ({len(fr)}) | {np.mean(wr >= f):.2f} ({len(wr)}) |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
