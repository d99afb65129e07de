"""Import the GeoTecINIT ESP32-S2 activity captures (ODC-By 1.0) as compact evaluation data.

Source: github.com/GeoTecINIT/stability-csi-har (reproducibility package of "Temporal
Stability on Human Activity Recognition based on Wi-Fi CSI", IPIN 2023), folder
01_DATA/03_COLLECTED-DATASET/02_LABELLED: an ESP32-S2 (SparkFun Thing Plus) pinging a
TP-Link Archer C80 on channel 6 at ~100 Hz, HT-LTF amplitudes of 56 subcarriers (-28..-1,
1..28), one person moving between two chairs 3 m apart (seated, standing up, walking,
turning, sitting down); four sessions D1 (20 sequences), D2/D3/D4 (4 each, 10, 30 and 90 min
later). Data licensed under the Open Data Commons Attribution License 1.0.

    python scripts/import_geotecinit.py /path/to/stability-csi-har   # writes data/real/geotecinit-esp32s2/

Amplitudes are stored as float16 (3 significant digits; the source values are magnitudes of
int8 I/Q) with one label code per packet. EVALUATION ONLY: nothing trains or tunes on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "data" / "real" / "geotecinit-esp32s2"
LABELS = ("SEATED", "STANDING_UP", "WALKING", "TURN", "SITTING_DOWN")


def main(src: str) -> int:
    base = Path(src) / "01_DATA" / "03_COLLECTED-DATASET" / "02_LABELLED"
    arrays = {}
    for session in ("D1", "D2", "D3", "D4"):
        for xf in sorted((base / session).glob("*-x.npy")):
            x = np.load(xf)  # (56, n)
            y = np.load(xf.with_name(xf.name.replace("-x.npy", "-y.npy")), allow_pickle=True).ravel()
            codes = np.array([LABELS.index(str(v).rsplit("_", 1)[0]) for v in y], np.uint8)
            key = f"{session}_{xf.name[:-6]}"
            arrays[key + "_amp"] = x.T.astype(np.float16)
            arrays[key + "_label"] = codes
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "captures.npz", labels=np.array(LABELS), **arrays)
    print(f"wrote {OUT / 'captures.npz'}: {len(arrays) // 2} executions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
