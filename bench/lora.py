"""LoRA adaptation time per DAC vs full fine-tuning of the same model, in the same run.

Both start from the same pretrained base (a reduced pretraining budget, built here so the
script stands alone), train for the same epochs on the same client-room Shadow Twin
episodes, and are evaluated on the same held-out episodes of that room.
Goal (DESIGN §8): LoRA adaptation per DAC < 2 min on 2 cores. Prints the trainable-parameter
ratio and the time ratio full / LoRA.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import torch

    from iv_pipelines.request import load_request_file
    from iv_pipelines.sensing.client import client_sets, train_client_adapter, uncalibrated
    from iv_pipelines.sensing.evaluate import classification_metrics
    from iv_pipelines.sensing.model import load_model, predict_proba, save_model, train
    from iv_pipelines.sensing.pipeline import client_resident, client_room, pretrain_base

    torch.set_num_threads(2)
    req = load_request_file(
        Path(__file__).resolve().parent.parent / "examples/requests/fall-detection-acme.yaml"
    )
    room, resident = client_room(req), client_resident(req)
    base = pretrain_base(n_rooms=48, per_activity=8, epochs=10, n_eval_rooms=4, eval_per_activity=5)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(base.model, base.cfg, Path(tmp))
        t0 = time.perf_counter()
        cal = uncalibrated(resident)
        lora = train_client_adapter(Path(tmp), room, cal)  # the asset's default budget
        lora_wall = time.perf_counter() - t0

        full, _ = load_model(Path(tmp))
        tr, _, ev = client_sets(room, cal, 120, 150, 0)  # the same data and seeds the adapter uses
        x, y, xe, ye = tr.x, tr.y, ev.x, ev.y
        t0 = time.perf_counter()
        rep = train(full, x, y, epochs=10, lr=1e-3)  # the adapter's default epochs
        full_train = rep.seconds
        full_wall = time.perf_counter() - t0
        full_metrics = classification_metrics(predict_proba(full, xe), ye, "client_room_")
    ratio = lora.trainable_params / lora.total_params
    print(
        f"LoRA adaptation: {lora.train_seconds:.2f} s training, {lora_wall:.2f} s with twin simulation | "
        f"full fine-tuning: {full_train:.2f} s training ({full_wall:.2f} s) | time ratio full/LoRA "
        f"{full_train / lora.train_seconds:.2f}x | goal < 120 s ({'OK' if lora_wall < 120 else 'ABOVE'})"
    )
    print(
        f"trainable parameters: LoRA {lora.trainable_params:,} of {lora.total_params:,} ({100 * ratio:.1f}%), "
        f"full {rep.trainable_params:,}"
    )
    print(
        f"client-room held-out accuracy: base {lora.base_metrics['client_room_accuracy']:.3f}, "
        f"LoRA {lora.adapter_metrics['client_room_accuracy']:.3f}, full {full_metrics['client_room_accuracy']:.3f} "
        f"(n={full_metrics['client_room_n']}; reduced-budget base, see the asset metadata for the default one)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
