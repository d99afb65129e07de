#!/usr/bin/env bash
# On a GPU machine: compile the Triton kernels (no interpreter), run their parity tests on the
# device, then print kernel-vs-torch speed ratios. Usage: bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export TRITON_INTERPRET=0 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
$PY -m pytest -q tests/test_kernels.py -k "kernel_matches or empty_memory"
$PY -m pytest -q tests/test_mesh.py -k "minplus"
$PY bench/gpu_kernels.py
