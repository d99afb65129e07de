"""LLM backends for hypothesis generation and request simulation.

Two chat backends share one interface (`complete(messages, seed) -> str`):
- `TransformersChat`: any Hugging Face causal LM from a local path (UserLM-8b, an instruct
  model on a GPU node, or a tiny config-built model in tests). Loaded with
  `local_files_only=True`; nothing is downloaded.
- `OpenAIChat`: any OpenAI-compatible `/chat/completions` endpoint (vLLM, Ollama, ...).

`LLMGenerator` asks for a hypothesis as JSON with the structured fields and falls back to
free text (kept verbatim, fields marked unparsed) when the model does not comply.
`LLMRequesterSimulator` is UserLM-8b's real job: it writes client requests.
"""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
from typing import Protocol

from iv_pipelines.discovery.generator import asked_tasks, grounding_phrases, resolve_domain
from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.discovery.knowledge import Domain, knowledge_base
from iv_pipelines.request import DacRequest, EnvironmentSpec

FIELDS = ("task", "approach", "data", "target_metric", "risk")
SYSTEM = (
    "You design machine-learning pilots. Answer with one JSON object with the keys "
    "task, approach, data, target_metric, risk (short phrases) and nothing else."
)


class ChatBackend(Protocol):
    name: str

    def complete(self, messages: list[dict], seed: int) -> str: ...


class LLMBackendError(RuntimeError):
    """The model or endpoint failed; the message names which and why."""


class TransformersChat:
    name = "transformers"

    def __init__(
        self, model_path: str, device: str = "cpu", max_new_tokens: int = 160, temperature: float = 0.8
    ):
        self.model_path = model_path
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self._model = None
        self._tok = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                self._tok = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
                self._model = AutoModelForCausalLM.from_pretrained(self.model_path, local_files_only=True)
            except OSError as exc:
                raise LLMBackendError(f"cannot load a causal LM from {self.model_path!r}: {exc}") from None
            self._model.eval().to(self.device)

    def prompt(self, messages: list[dict]) -> str:
        self._load()
        if getattr(self._tok, "chat_template", None):
            return self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"

    def complete(self, messages: list[dict], seed: int) -> str:
        import torch

        text = self.prompt(messages)
        enc = self._tok(text, return_tensors="pt", truncation=True, max_length=512).to(self.device)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self._model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=max(self.temperature, 1e-5),
                pad_token_id=self._tok.pad_token_id or 0,
            )
        return self._tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


class OpenAIChat:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        temperature: float = 0.8,
        max_tokens: int = 300,
        timeout_s: float = 60.0,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def complete(self, messages: list[dict], seed: int) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "seed": seed,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise LLMBackendError(f"{self.url} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError) as exc:
            raise LLMBackendError(f"{self.url} is not reachable: {exc}") from None
        except json.JSONDecodeError:
            raise LLMBackendError(f"{self.url} did not return JSON") from None
        try:
            return payload["choices"][0]["message"]["content"].strip()
        except (KeyError, IndexError, TypeError):
            raise LLMBackendError(
                f"{self.url} returned no choices[0].message.content: {str(payload)[:200]}"
            ) from None


def parse_hypothesis(text: str, domain: str, origin: str) -> Hypothesis:
    """A Hypothesis from model output: the first JSON object with the five fields, else free text."""
    for match in re.finditer(r"\{.*?\}", text, flags=re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and all(isinstance(obj.get(f), str) and obj[f].strip() for f in FIELDS):
            return Hypothesis(domain=domain, origin=origin, **{f: obj[f].strip() for f in FIELDS})
    cleaned = " ".join(text.split()) or "(empty output)"
    return Hypothesis(
        domain=domain,
        task="unparsed",
        approach="unparsed",
        data="unparsed",
        target_metric="unparsed",
        risk="unparsed",
        origin=f"{origin}:free-text",
        text_override=cleaned,
    )


def _hypothesis_prompt(request: DacRequest, domain: Domain, guidance: list[str]) -> list[dict]:
    lines = [
        f"Client request: {request.text}",
        f"Environment: {request.environment.description}",
        f"Domain: {domain.title}. Known facts: " + "; ".join(domain.facts),
    ]
    lines.append(
        "Task: one of what the client asks for: " + "; ".join(asked_tasks(domain.name, request.text))
    )
    lines += [f"Constraint: {p}" for p in grounding_phrases(request)[2:]]
    lines += [f"Playbook advice: {g}" for g in guidance]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


class LLMGenerator:
    """Hypothesis generator on any chat backend (transformers or OpenAI-compatible)."""

    def __init__(self, chat: ChatBackend):
        self.chat = chat
        self.name = chat.name

    def propose(
        self, request: DacRequest, n: int, seed: int, guidance: list[str] | None = None
    ) -> list[Hypothesis]:
        domain = resolve_domain(request)
        messages = _hypothesis_prompt(request, domain, list(guidance or []))
        return [
            parse_hypothesis(self.chat.complete(messages, seed + i), domain.name, self.name) for i in range(n)
        ]

    def mutate(
        self, parent: Hypothesis, request: DacRequest, rng: random.Random, guidance: list[str] | None = None
    ) -> Hypothesis:
        domain = resolve_domain(request)
        messages = _hypothesis_prompt(request, domain, list(guidance or []))
        messages.append(
            {
                "role": "user",
                "content": f"Improve this hypothesis, changing one or two fields:\n{parent.text}",
            }
        )
        child = parse_hypothesis(self.chat.complete(messages, rng.randrange(2**31)), domain.name, self.name)
        return child.with_(origin="mutation")


class LLMRequesterSimulator:
    """Simulated client requests written by a chat model (UserLM-8b's intended use)."""

    def __init__(self, chat: ChatBackend):
        self.chat = chat

    def requests(self, n_per_domain: int, seed: int) -> list[DacRequest]:
        out = []
        for domain in sorted(knowledge_base().values(), key=lambda d: d.name):
            for i in range(n_per_domain):
                messages = [
                    {
                        "role": "system",
                        "content": "You are a client asking an AI vendor for a pilot. "
                        "Write your request in two sentences.",
                    },
                    {
                        "role": "user",
                        "content": f"Your business: {domain.title}. Context: {domain.facts[0]}.",
                    },
                ]
                text = " ".join(self.chat.complete(messages, seed * 1000 + i).split())[:3900]
                if len(re.findall(r"[A-Za-z]{2,}", text)) < 3:  # the model wrote nothing usable
                    continue
                out.append(
                    DacRequest(
                        dac_id=f"sim-{domain.name}-{i}"[:63].rstrip("-"),
                        client_id=f"simulated-{domain.name.split('-')[0]}",
                        domain=domain.name,
                        text=text.ljust(10, "."),
                        environment=EnvironmentSpec(description=domain.facts[0]),
                    )
                )
        return out
