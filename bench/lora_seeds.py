"""How often the LoRA adapter beats the base model on the sample client room, over training
seeds 0-3, with the base model `make demo` trained (run `make demo` first). Each seed draws
its own adaptation and held-out episodes; the gate is `adapter_beats_base`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from assets.training import BASE_MODEL_DIR
    from iv_pipelines.paths import default_storage_root
    from iv_pipelines.request import load_request_file
    from iv_pipelines.sensing.pipeline import adapt_lora, adapter_beats_base, client_resident, client_room

    base = default_storage_root() / BASE_MODEL_DIR
    if not (base / "model.safetensors").exists():
        print(f"SKIPPED: no base model at {base}; run `make demo` first")
        return 0
    req = load_request_file(
        Path(__file__).resolve().parent.parent / "examples/requests/fall-detection-acme.yaml"
    )
    room, resident = client_room(req), client_resident(req)
    wins = 0
    for seed in range(4):
        r = adapt_lora(base, room, resident, seed=seed)
        ok, why = adapter_beats_base(r.base_metrics, r.adapter_metrics)
        wins += ok
        print(f"seed {seed}: {'beats' if ok else 'does not beat'} base — {why}")
    print(f"adapter beats base on {wins} of 4 seeds ({resident.name} resident, client room {room.digest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
