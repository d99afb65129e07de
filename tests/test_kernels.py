"""Triton kernels vs their torch references, in the Triton interpreter on CPU.

conftest.py sets TRITON_INTERPRET=1 before anything imports triton (unless the environment
already chose, as bench/gpu_check.sh does on a GPU machine). Sizes stay small: the
interpreter is 100-1000x slower than torch.
"""

import numpy as np
import pytest
import torch

from iv_pipelines.scoring import obmi
from iv_pipelines.scoring.reference import QERO_DUSTBIN, QERO_TAU

triton = pytest.importorskip("triton")


def _device():
    return "cuda" if torch.cuda.is_available() and triton_is_compiled() else "cpu"


def triton_is_compiled() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "0") != "1"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("b, n, d", [(5, 70, 48), (17, 3, 384), (1, 1, 16)])
def test_novelty_kernel_matches_torch(b, n, d):
    from iv_kernels.novelty import novelty_triton

    rng = np.random.default_rng(b * 100 + n)
    h = torch.from_numpy(_unit(rng.normal(size=(b, d))).astype(np.float32)).to(_device())
    m = torch.from_numpy(_unit(rng.normal(size=(n, d))).astype(np.float32)).to(_device())
    got = novelty_triton(h, m).cpu().numpy()
    want = obmi.aieo(h, m).cpu().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_novelty_kernel_empty_memory_is_one():
    from iv_kernels.novelty import novelty_triton

    h = torch.from_numpy(_unit(np.ones((3, 16))).astype(np.float32))
    assert novelty_triton(h, torch.zeros((0, 16))).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("lens_h, lens_c, d", [([4, 9, 1], [6, 12, 3], 40), ([20, 7], [30, 5], 64)])
def test_qero_kernel_matches_torch(lens_h, lens_c, d):
    from iv_kernels.qero_mi import qero_triton

    rng = np.random.default_rng(len(lens_h) + d)
    hs = [_unit(rng.normal(size=(n, d))).astype(np.float32) for n in lens_h]
    # context shares some exact tokens with the hypothesis so alignment is not trivial
    cs = []
    for h, n in zip(hs, lens_c, strict=True):
        c = _unit(rng.normal(size=(n, d))).astype(np.float32)
        c[: min(n, len(h)) // 2] = h[: min(n, len(h)) // 2]
        cs.append(c)
    h = obmi.TokenBatch.from_list(hs, _device())
    c = obmi.TokenBatch.from_list(cs, _device())
    got = qero_triton(h, c, QERO_TAU, QERO_DUSTBIN).cpu().numpy()
    want = obmi.qero(h, c).cpu().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert len(set(np.round(got, 4))) == len(got)  # not a constant


def test_scorer_triton_path_equals_torch_path(embedder):
    from iv_pipelines.scoring.scorer import ObmiScorer

    texts = ["Detect falls from CSI with a transformer", "The bakery sells bread", "alloy " * 10]
    req, ctx, mem = (
        "WiFi fall detection at home",
        "ESP32 CSI subcarriers in a living room",
        ["presence sensing"],
    )
    a = ObmiScorer(embedder, use_triton=False).raw_scores(texts, req, ctx, mem)
    b = ObmiScorer(embedder, use_triton=True).raw_scores(texts, req, ctx, mem)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
