"""OBMI operators: torch batch == numpy reference; behaviour on real MiniLM embeddings."""

import numpy as np
import pytest
import torch

from iv_pipelines.scoring import obmi, reference


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def random_batch():
    rng = np.random.default_rng(0)
    d = 32
    lens_h, lens_r, lens_c = [5, 9, 2, 14], [7, 3, 11, 6], [12, 4, 9, 20]
    H = [_unit(rng.normal(size=(n, d))).astype(np.float32) for n in lens_h]
    Rt = [_unit(rng.normal(size=(n, d))).astype(np.float32) for n in lens_r]
    C = [_unit(rng.normal(size=(n, d))).astype(np.float32) for n in lens_c]
    hs = _unit(rng.normal(size=(4, d))).astype(np.float32)
    rs = _unit(rng.normal(size=(4, d))).astype(np.float32)
    M = _unit(rng.normal(size=(50, d))).astype(np.float32)
    return H, Rt, C, hs, rs, M


def test_torch_matches_reference(random_batch):
    H, Rt, C, hs, rs, M = random_batch
    h, r, c = obmi.TokenBatch.from_list(H), obmi.TokenBatch.from_list(Rt), obmi.TokenBatch.from_list(C)
    got = {
        "AROE": obmi.aroe(torch.from_numpy(hs), torch.from_numpy(rs), h, r).numpy(),
        "AESP": obmi.aesp(h).numpy(),
        "QERO": obmi.qero(h, c).numpy(),
        "AIEO": obmi.aieo(torch.from_numpy(hs), torch.from_numpy(M)).numpy(),
    }
    want = {
        "AROE": [reference.aroe(hs[i], rs[i], H[i], Rt[i]) for i in range(4)],
        "AESP": [reference.aesp(H[i]) for i in range(4)],
        "QERO": [reference.qero(H[i], C[i]) for i in range(4)],
        "AIEO": [reference.aieo(hs[i], M) for i in range(4)],
    }
    for op in got:
        np.testing.assert_allclose(got[op], want[op], rtol=1e-4, atol=1e-5, err_msg=op)


def test_hand_computed_cases():
    e = np.eye(4, dtype=np.float32)
    # identical hypothesis and request: cosine 1, every request token recalled exactly
    assert reference.aroe(e[0], e[0], e[:2], e[:2]) == pytest.approx(1.0)
    # orthogonal: cosine 0, recall 0
    assert reference.aroe(e[0], e[1], e[:1], e[2:3]) == pytest.approx(0.0)
    # n identical tokens: all energy in the mean -> entropy 0
    assert reference.aesp(np.repeat(e[:1], 6, axis=0)) == pytest.approx(0.0, abs=1e-9)
    # 4 orthogonal tokens: mean energy 1 (=4*|mu|^2) and centred spectrum (1,1,1,0): uniform over 4 parts
    assert reference.aesp(e) == pytest.approx(1.0, abs=1e-6)
    # novelty: a memory item equal to the hypothesis -> 0; empty memory -> 1
    assert reference.aieo(e[0], e[:1]) == pytest.approx(0.0)
    assert reference.aieo(e[0], np.zeros((0, 4))) == 1.0
    # PRIN of equal percentiles is that percentile
    assert reference.prin(np.array([0.7] * 4), np.ones(4)) == pytest.approx(0.7)


def test_qero_sharp_alignment_beats_diffuse():
    e = np.eye(8, dtype=np.float32)
    sharp = reference.qero(e[:4], e[:4])  # each token has its own exact match
    diffuse = reference.qero(e[:4], e[4:])  # nothing beats the dustbin
    assert sharp > 0.9 and diffuse < 0.05


@pytest.fixture(scope="module")
def scorer():
    from iv_pipelines.embedding import MiniLMEmbedder
    from iv_pipelines.scoring.scorer import ObmiScorer

    return ObmiScorer(MiniLMEmbedder())


REQUEST = (
    "Autonomous WiFi sensing for elderly fall detection in smart homes: detect falls of a person "
    "living alone from ESP32 channel state information and alert caregivers."
)
CONTEXT = (
    "Living room with sofa, one ESP32-S3 sensor on a shelf. ESP32 devices report channel state "
    "information for 52 to 56 used subcarriers. Falls produce a short burst of high Doppler energy."
)
GOOD = (
    "Train a compact transformer on CSI amplitude and phase-difference windows from the ESP32 sensor "
    "to recognise falls from their Doppler bursts, adapted to the living room with a LoRA adapter."
)
MEMORY = [
    (
        "Detect presence in offices with a gradient-boosted classifier on temporal variance of CSI "
        "amplitudes, calibrated on empty-room captures."
    )
]


def test_scores_differ_for_different_inputs(scorer):
    texts = [GOOD, "Forecast feeder load from weather data with quantile regression.", MEMORY[0]]
    raw = scorer.raw_scores(texts, REQUEST, CONTEXT, MEMORY)
    for k, op in enumerate(obmi.OPERATORS):
        assert len(set(np.round(raw[:, k], 6))) == 3, f"{op} returned a constant {raw[:, k]}"
    # and a different request changes the scores of the same hypothesis
    other = scorer.raw_scores([GOOD], "Forecast retail stock-outs per store", CONTEXT, MEMORY)
    assert not np.allclose(other[0], raw[0])


def test_degenerate_hypothesis_scores_low_aesp(scorer):
    raw = scorer.raw_scores([GOOD, "alloy " * 40], REQUEST, CONTEXT, MEMORY)
    assert raw[1, 1] < 0.2 < 0.6 < raw[0, 1]


def test_off_topic_hypothesis_scores_low_aroe(scorer):
    raw = scorer.raw_scores(
        [GOOD, "The bakery on the corner sells sourdough loaves every morning."], REQUEST, CONTEXT, MEMORY
    )
    assert raw[1, 0] < 0.15 and raw[0, 0] > raw[1, 0] + 0.3


def test_paraphrase_of_memory_scores_low_aieo(scorer):
    import random

    from iv_pipelines.discovery.nulls import paraphrase

    para = paraphrase(MEMORY[0], random.Random(3))
    raw = scorer.raw_scores([GOOD, para], REQUEST, CONTEXT, MEMORY)
    assert raw[1, 3] < 0.15 and raw[0, 3] > raw[1, 3] + 0.2


def test_keyword_salad_scores_low_aieo(scorer):
    import random

    from iv_pipelines.discovery.nulls import keyword_salad

    salad = keyword_salad(REQUEST, random.Random(0))
    raw = scorer.raw_scores([GOOD, salad], REQUEST, CONTEXT, [])
    assert raw[1, 3] < raw[0, 3]  # parroting the request adds nothing new


def test_aieo_compares_proposals_not_tasks(scorer):
    """AIEO looks past the knowledge base's task phrase: a hypothesis that proposes exactly what
    a validated one did, for another task of the domain, is not novel (before, the other task
    alone made it look novel and off-task hypotheses won the gate); and the same proposal for
    either task gets the same novelty. The other operators still see the whole text."""
    from iv_pipelines.scoring.scorer import proposal_text

    body = (
        " using a LoRA adapter per room on top of a base model pretrained on simulated multipath rooms, "
        "trained on ESP32 CSI captured in the client's home."
    )
    fall = "Hypothesis: fall detection from CSI windows" + body
    breathing = "Hypothesis: breathing-rate estimation" + body
    assert proposal_text(fall) == proposal_text(breathing)
    assert "fall detection" not in proposal_text("Hypothesis: Fall Detection from CSI windows" + body)
    raw = scorer.raw_scores([fall, breathing], REQUEST, CONTEXT, [fall])
    assert raw[0, 3] == pytest.approx(0.0, abs=1e-5) and raw[1, 3] == pytest.approx(0.0, abs=1e-5)
    assert raw[0, 0] != pytest.approx(raw[1, 0])  # alignment with the request does see the task
    fresh = scorer.raw_scores([fall, breathing], REQUEST, CONTEXT, MEMORY)
    assert fresh[0, 3] == pytest.approx(fresh[1, 3], abs=1e-5) and fresh[0, 3] > 0.2
