"""Local transformers backend: batched, chat-templated generation and choice scoring.

The embedded default model lives here (``HFLocalBackend("embedded")``). Generation goes
through :mod:`.engine` (shared few-shot prefixes computed once, grouped keys/values kept
grouped, finished rows leave the batch) for the decoder families it knows, and through
``model.generate`` otherwise. Batches are formed per identical GenerationParams and sorted by
prompt length to cut padding.

Precision (``dtype="auto"``): choice log-probs (the judge's probabilities) are always scored
in fp32 on the CPU. Generation runs in bf16 where the CPU has native bf16 instructions
(AVX512-BF16/AMX: measured 2.4x faster for the SL stage on the embedded model; greedy answers
match fp32 word for word over their first words, then drift as any precision change does —
bench/samples.md shows them side by side), in fp32 elsewhere, and in bf16 on CUDA. A bf16
generation model on the CPU gets prepacked weights and fused norms (:mod:`.cpu_kernels`).
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch

from ..models import EMBEDDED, resolve_model
from .engine import cpu_kernels
from .engine.cpu_kernels import cpu_has_bf16
from .base import Completion, GenerationParams, Request

__all__ = ["HFLocalBackend", "default_device", "default_threads", "cut_at_stop", "render_request", "cpu_has_bf16",
           "completion_from_tokens"]

ENGINE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2", "granite", "smollm3"})
"""Decoders whose attention the engine replaces exactly (rotary, grouped keys, no sliding
window or soft-capping); other models generate with ``model.generate``."""


SHARED_PREFIX_MIN = 256
"""Scoring shares the prompts' common prefix when it is at least this many tokens."""
SHARED_PREFIX_ROWS = 16
"""Rows per scoring batch on the shared-prefix path (each row holds the prefix's keys/values)."""


def _common_prefix_len(seqs: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return max(n, 0)


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _busy_cores() -> float:
    """Cores other processes keep busy right now: runnable tasks (from /proc/loadavg's
    "running/total" field, sampled a few times, the least seen) minus this process's one
    running thread. The 1-minute load average would count this process's own recent work
    (a benchmark's previous stage, a matmul probe) as somebody else's."""
    import time

    seen = []
    for _ in range(5):
        try:
            with open("/proc/loadavg") as f:
                seen.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            break
        time.sleep(0.02)
    if seen:
        return float(max(0, min(seen)))
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def default_threads() -> int:
    """Threads for torch on CPU: the cores not already busy with other processes.

    torch's intra-op pool makes every operator wait for all its threads; when another
    process holds a core, the thread scheduled there stalls each of the ~300 small operators
    of a decoding step. Measured on 2 cores with the machine loaded: 2 threads decoded at 2-14
    tok/s, 1 thread at 12-45 tok/s. On a quiet machine all cores are used.
    """
    n = os.cpu_count() or 1
    return max(1, min(n, round(n - _busy_cores())))


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; report whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def completion_from_tokens(tokenizer, eos_ids: set[int], new: Sequence[int], n_prompt: int,
                           params: GenerationParams) -> Completion:
    """A Completion from generated token ids: cut at the first end token, then at stop strings
    (shared by the transformers and CTranslate2 backends)."""
    new = list(new)
    end = next((k for k, t in enumerate(new) if t in eos_ids), None)
    kept = new if end is None else new[:end]
    text, stopped = cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), params.stop)
    return Completion(
        text=text,
        finish_reason="stop" if end is not None or stopped else "length",
        prompt_tokens=n_prompt,
        completion_tokens=len(kept) + (end is not None),
    )


def render_request(tokenizer, request: Request) -> str:
    """The exact prompt text a local model sees: chat template + forced continuation
    (shared by the transformers and CTranslate2 backends, so both see identical tokens)."""
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # plain models: a minimal transcript format
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return text + request.continuation


class HFLocalBackend:
    """A causal LM from a local HF folder (or ``"embedded"``), run with transformers."""

    def __init__(
        self,
        model: str | os.PathLike = EMBEDDED,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 64,
        threads: int | None = None,
        engine: bool = True,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model)
        self.device = device or default_device()
        if self.device == "cpu":
            torch.set_num_threads(threads or default_threads())
        torch_dtype = {
            "auto": torch.bfloat16 if self.device == "cuda" else torch.float32,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[dtype]
        tokenizer = AutoTokenizer.from_pretrained(path)
        name = "embedded:SmolLM2-135M-Instruct" if str(model) == EMBEDDED else f"hf:{Path(path).resolve()}"
        if dtype == "auto" and self.device == "cpu" and cpu_has_bf16():
            # generation in bf16; the fp32 scoring model loads on the first choice_logprobs call
            # (an SL run never scores: one copy of the weights in memory, not two)
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
            self._setup(lm, tokenizer, name, batch_size, engine=engine,
                        scorer=lambda: AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32))
        else:
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            self._setup(lm, tokenizer, name, batch_size, engine=engine)

    @classmethod
    def from_objects(cls, model, tokenizer, *, id: str, batch_size: int = 64, engine: bool = True,
                     gen_dtype: torch.dtype | None = None) -> "HFLocalBackend":
        """Wrap an already-loaded model (tests build tiny random models from a config);
        ``gen_dtype``: generate on a copy in that precision, score with ``model``."""
        self = cls.__new__(cls)
        self.device = str(next(model.parameters()).device)
        if gen_dtype is not None and gen_dtype != next(model.parameters()).dtype:
            import copy

            scorer = model.to(self.device).eval()
            self._setup(copy.deepcopy(scorer).to(gen_dtype), tokenizer, id, batch_size, engine=engine,
                        scorer=lambda: scorer)
        else:
            self._setup(model, tokenizer, id, batch_size, engine=engine)
        return self

    def _setup(self, model, tokenizer, id: str, batch_size: int, *, engine: bool = True, scorer=None) -> None:
        """``model`` generates; ``scorer`` (a loader) gives the model that scores choices,
        when that is another one (fp32 beside a bf16 generator)."""
        self.id = id
        self.gen_model = model.to(self.device).eval()
        gen_dtype = next(self.gen_model.parameters()).dtype
        self.packed = cpu_kernels.available(gen_dtype, self.device) and cpu_kernels.pack_linears(self.gen_model) > 0
        if self.device == "cpu":
            cpu_kernels.fuse_rms_norms(self.gen_model)
        self._scorer_loader = scorer
        self._model = None if scorer is not None else self.gen_model
        self.engine = engine and getattr(model.config, "model_type", None) in ENGINE_MODEL_TYPES \
            and not getattr(model.config, "sliding_window", None)
        self.kv_cache = None
        self.work = None
        """Token positions the engine computed so far (:class:`.engine.Work`), or None without it."""
        if self.engine:
            from .engine import decoder as _engine

            _engine.enable(self.gen_model)
            self.work = _engine.Work()
            self.kv_cache = _engine.KVCache()  # later calls extending earlier rows reuse their keys/values
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])

    @property
    def model(self):
        """The model that scores choices (fp32 on the CPU), loaded on first use."""
        if self._model is None:
            self._model = self._scorer_loader().to(self.device).eval()
        return self._model

    def __repr__(self) -> str:
        dtype = next(self.gen_model.parameters()).dtype
        return (f"HFLocalBackend(id={self.id!r}, device={self.device!r}, generation={dtype}, engine={self.engine}, "
                f"packed={self.packed})")

    # -- rendering -----------------------------------------------------------------------
    def render(self, request: Request) -> str:
        """The exact prompt text the model sees (chat template + forced continuation)."""
        return render_request(self.tokenizer, request)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # The chat template already holds any special tokens the model expects.
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        return ids, mask

    # -- generation ----------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        groups: dict[GenerationParams, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[r.params].append(i)
        for params, idxs in groups.items():
            encoded = dict(zip(idxs, self._encode([self.render(requests[i]) for i in idxs])))
            if self.engine:
                for i, c in zip(idxs, self._engine_generate([encoded[i] for i in idxs], params)):
                    results[i] = c
                continue
            order = sorted(idxs, key=lambda i: len(encoded[i]), reverse=True)
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                for i, c in zip(chunk, self._generate_batch([encoded[i] for i in chunk], params)):
                    results[i] = c
        return results  # type: ignore[return-value]

    def _completion(self, new: list[int], n_prompt: int, params: GenerationParams) -> Completion:
        return completion_from_tokens(self.tokenizer, self._eos_ids, new, n_prompt, params)

    def _engine_generate(self, seqs: list[list[int]], params: GenerationParams) -> list[Completion]:
        from .engine import decoder as engine

        ep = engine.EngineParams(max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                                 top_p=params.top_p, repetition_penalty=params.repetition_penalty, seed=params.seed)
        outs = engine.generate(self.gen_model, seqs, ep, eos=self._eos_ids, pad=self.tokenizer.pad_token_id,
                               batch_size=self.batch_size, cache=self.kv_cache, work=self.work)
        return [self._completion(o.tokens, len(s), params) for o, s in zip(outs, seqs)]

    def _generate_batch(self, seqs: list[list[int]], params: GenerationParams) -> list[Completion]:
        from transformers import GenerationConfig

        ids, mask = self._left_pad(seqs)
        sample = params.temperature > 0
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=None,
            repetition_penalty=params.repetition_penalty,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos_ids),
        )
        if sample:
            torch.manual_seed(params.seed if params.seed is not None else 0)
        with torch.inference_mode():
            out = self.gen_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        return [self._completion(row, len(seq), params) for row, seq in zip(out[:, ids.shape[1] :].tolist(), seqs)]

    # -- scoring -------------------------------------------------------------------------
    def _next_token_scores_shared(self, prompts: list[list[int]], shared: int, choices: Sequence[str],
                                  choice_tok: list[int]) -> list[dict[str, float]]:
        """Next-token log-probs when every prompt starts with the same ``shared`` tokens: the
        prefix's keys/values are computed once, each batch runs only its rows' own tokens
        (right-padded after the prefix, read at each row's last token). Same numbers as the
        plain path, up to float rounding (tests check it)."""
        from transformers import DynamicCache

        with torch.inference_mode():
            prefix = self.model(input_ids=torch.tensor([prompts[0][:shared]], device=self.device), use_cache=True)
            layers = [(k, v) for k, v, *_ in prefix.past_key_values]
        decoder, head = self.model.get_decoder(), self.model.get_output_embeddings()
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        scores: list[dict[str, float]] = [{} for _ in prompts]
        rows = max(1, min(self.batch_size, SHARED_PREFIX_ROWS))
        for start in range(0, len(order), rows):
            chunk = order[start : start + rows]
            tails = [prompts[i][shared:] for i in chunk]
            width = max(len(t) for t in tails)
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], device=self.device)
            mask = torch.tensor([[1] * (shared + len(t)) + [0] * (width - len(t)) for t in tails], device=self.device)
            cache = DynamicCache(ddp_cache_data=[(k.expand(len(chunk), *k.shape[1:]), v.expand(len(chunk), *v.shape[1:]))
                                                 for k, v in layers])
            with torch.inference_mode():
                hidden = decoder(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True).last_hidden_state
                last = hidden[torch.arange(len(chunk)), torch.tensor([len(t) - 1 for t in tails])]
                logp = torch.log_softmax(head(last).float(), dim=-1)
            for row, i in enumerate(chunk):
                scores[i] = {c: logp[row, tok].item() for c, tok in zip(choices, choice_tok)}
        return scores

    def choice_logprobs(
        self, requests: Sequence[Request], choices: Sequence[str]
    ) -> list[dict[str, float]]:
        """Sum of token log-probs of each choice string right after the rendered prompt."""
        prompts = self._encode([self.render(r) for r in requests])
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        scores: list[dict[str, float]] = [{} for _ in requests]
        if all(len(ids) == 1 for ids in choice_ids):
            # Single-token choices (the judge's "A"/"B"): one forward pass per prompt, read the
            # next-token distribution — half the work of scoring each choice separately.
            shared = _common_prefix_len(prompts)
            if shared >= SHARED_PREFIX_MIN:  # e.g. few-shot demonstrations: computed once
                return self._next_token_scores_shared(prompts, shared, choices, [c[0] for c in choice_ids])
            order = sorted(range(len(requests)), key=lambda i: len(prompts[i]), reverse=True)
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                ids, mask = self._left_pad([prompts[i] for i in chunk])
                with torch.inference_mode():
                    logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                for row, i in enumerate(chunk):
                    scores[i] = {c: logp[row, cid[0]].item() for c, cid in zip(choices, choice_ids)}
            return scores
        items = [(ri, ci) for ri in range(len(requests)) for ci in range(len(choices))]
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            seqs = [prompts[ri] + choice_ids[ci] for ri, ci in chunk]
            ids, mask = self._left_pad(seqs)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            width = ids.shape[1]
            for row, (ri, ci) in enumerate(chunk):
                n = len(choice_ids[ci])
                # token at position p is predicted by the logits at position p-1
                positions = range(width - n, width)
                total = sum(logp[row, p - 1, ids[row, p]].item() for p in positions)
                scores[ri][choices[ci]] = total
        return scores
