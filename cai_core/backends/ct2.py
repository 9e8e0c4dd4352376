"""CTranslate2 backend: the same local model, converted once to an int8 CTranslate2 folder.

An alternative engine behind the same protocol (``--backend ct2``). Against transformers
fp32 at the same batch it was several times faster; the default ``local`` backend's own
decoder (:mod:`.engine`: shared few-shot prefix computed once, bf16) measured faster still for
the SL stage, whose long few-shot prompts CTranslate2 copies into every row (bench/README.md).
Quality is comparable (bench/samples.md puts them side by side).

What it does beyond calling ``generate_batch``:

* **Conversion cached once** per source folder (content fingerprint + CTranslate2 version),
  under ``cache_dir()/ct2/``, guarded by a file lock and landed atomically, like the GGUF
  conversion in :mod:`cai_core.models`.
* **Shared-prefix caching.** Requests of one call whose prompts share a long token prefix
  (the SL stage's few-shot examples: ~500 of a critique's ~600 prompt tokens) are sent as one
  ``generate_batch`` with that prefix as ``static_prompt``: its KV cache is computed once and
  reused (and cached across calls), instead of once per request.
* **Both cores busy**: two engine replicas (``inter_threads``) each run a sub-batch on one
  core; measured faster here than one replica with two intra-op threads. Sub-batches are
  sized so both replicas get work. Finished sequences leave the batch (CTranslate2 does this).
* **Seeded sampling.** CTranslate2's sampler draws from a thread-local generator seeded once
  per worker thread (upstream issue #1757), so ``set_random_seed`` alone does not reproduce a
  run; a sampled call therefore runs on a fresh single-replica engine created right after
  seeding (about 0.15 s to create for the embedded model).
* **Choice log-probs** (the judge's log-prob mode) go to transformers in fp32 by default,
  loaded on first use: on the embedded model int8 shifted the judge's P(A) by about -0.14
  against fp32 (0.36 -> 0.22, 0.51 -> 0.39, 0.27 -> 0.13), enough to flip a verdict, while
  generation quality held. ``logprobs="ct2"`` scores with the engine instead: single-token
  choices read the next-token logits (``return_logits_vocab``), longer ones ``score_batch``.

Known difference from transformers: greedy output is identical whatever the batch only for
prompts of equal token length. For prompts of different lengths CTranslate2 forwards the
shortest length at once and the rest step by step, and int8 rounding then makes a few
answers diverge after a shared prefix (tests/test_ct2.py measures this).
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from ..models import EMBEDDED, cache_dir, resolve_model
from .base import Completion, GenerationParams, Request
from .engine import prefix_groups
from .hf_local import completion_from_tokens, render_request

__all__ = ["CT2Backend", "convert_checkpoint", "converted_dir", "MIN_SHARED_PREFIX", "SUB_BATCH_TOKENS"]

MIN_SHARED_PREFIX = 64
"""Tokens a group of prompts must share before the shared part is sent as a static prompt."""
SUB_BATCH_TOKENS = 3072
"""Rows x (prompt + new tokens) per engine sub-batch. The engine's KV cache grows by copying
and holds every query head (GQA keys expanded), about 0.3 MB per row and context token here,
so a step costs rows x context in time and memory. Measured on 2 cores: critiques (~650-token
context) ran as fast at 4 rows as at 6-8 and 2-9x slower at 16-29 rows; at 3072 the SL stage
peaks at ~1.8 GB RSS. Short answers (~110 tokens) still get 16 rows."""


def _fingerprint(src: Path, quantization: str) -> str:
    import ctranslate2

    h = hashlib.sha256(f"{src.resolve()}\x1f{quantization}\x1f{ctranslate2.__version__}".encode())
    for f in sorted(src.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin") or f.name.startswith("tokenizer")):
            st = f.stat()
            h.update(f"{f.name}\x1f{st.st_size}\x1f{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def converted_dir(src: Path, quantization: str = "int8") -> Path:
    """Where the CTranslate2 conversion of ``src`` lives (whether or not it exists yet)."""
    src = Path(src)
    return cache_dir() / "ct2" / f"{src.resolve().name}-{_fingerprint(src, quantization)}-{quantization}"


def convert_checkpoint(src: str | os.PathLike, quantization: str = "int8") -> Path:
    """Convert a local HF folder once; later calls return the cached folder at once."""
    src = Path(src)
    dest = converted_dir(src, quantization)
    if (dest / "model.bin").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / "model.bin").is_file():  # another process finished it meanwhile
            return dest
        from ctranslate2.converters import TransformersConverter

        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=dest.parent))
        try:
            TransformersConverter(str(src), low_cpu_mem_usage=True).convert(str(tmp), quantization=quantization, force=True)
            (tmp / "SOURCE.txt").write_text(f"converted from {src.resolve()} ({quantization})\n")
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


class CT2Backend:
    """A local HF causal LM run by CTranslate2 (int8 by default), behind the batch-first protocol."""

    def __init__(
        self,
        model: str | os.PathLike = EMBEDDED,
        *,
        compute_type: str = "int8",
        batch_size: int = 32,
        threads: int | None = None,
        min_shared_prefix: int = MIN_SHARED_PREFIX,
        logprobs: str = "transformers",
    ) -> None:
        if logprobs not in ("transformers", "ct2"):
            raise ValueError("logprobs must be 'transformers' or 'ct2'")
        import ctranslate2
        from transformers import AutoTokenizer

        src = resolve_model(model)
        self.source = src
        self.logprobs = logprobs
        self._scorer = None
        self.ct2_dir = convert_checkpoint(src, "int8")
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.compute_type = compute_type
        self.batch_size = max(1, batch_size)
        self.min_shared_prefix = min_shared_prefix
        self.threads = max(1, threads or os.cpu_count() or 1)
        # Two replicas, one core each, measured fastest on 2 cores (small matrices scale
        # poorly across intra-op threads); never more threads than cores.
        self.inter = 2 if self.threads >= 2 else 1
        self.intra = max(1, self.threads // self.inter)
        self.generator = ctranslate2.Generator(str(self.ct2_dir), device="cpu", compute_type=compute_type,
                                               inter_threads=self.inter, intra_threads=self.intra)
        base = "embedded:SmolLM2-135M-Instruct" if str(model) == EMBEDDED else f"hf:{Path(src).resolve()}"
        self.id = f"{base}@ct2-{compute_type}"
        eos = self.tokenizer.eos_token_id
        try:
            from transformers import GenerationConfig

            gen_eos = GenerationConfig.from_pretrained(src).eos_token_id
            eos = gen_eos if gen_eos is not None else eos
        except (OSError, ValueError):
            pass
        self._eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])
        self._eos_tokens = self.tokenizer.convert_ids_to_tokens(sorted(self._eos_ids))

    def __repr__(self) -> str:
        return f"CT2Backend(id={self.id!r}, threads={self.inter}x{self.intra})"

    # -- helpers -------------------------------------------------------------------------
    def render(self, request: Request) -> str:
        return render_request(self.tokenizer, request)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # The chat template already holds any special tokens the model expects.
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def _toks(self, ids: list[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids)

    def _run_groups(self, engine, seqs: list[list[int]], idxs: list[int], replicas: int, *, max_length: int,
                    **kw) -> dict[int, object]:
        """Requests sharing a long prompt prefix go as one call with that prefix as
        ``static_prompt``; all others together in one plain call. Calls are submitted
        asynchronously, sized so every replica gets work; returns index -> GenerationResult."""
        calls: list[tuple[list[int], int]] = []
        plain: list[int] = []
        for members, shared in prefix_groups(seqs, idxs, self.min_shared_prefix):
            if shared:
                calls.append((members, shared))
            else:
                plain += members
        if plain:
            calls.append((plain, 0))
        per_call = max(1, math.ceil(replicas / len(calls))) if calls else 1  # replicas each call may use
        pending = []
        for members, shared in calls:
            starts = [self._toks(seqs[i][shared:]) for i in members]
            static = self._toks(seqs[members[0]][:shared]) if shared else None
            row = max(len(seqs[i]) for i in members) + max_length
            size = max(1, min(self.batch_size, math.ceil(len(members) / per_call), SUB_BATCH_TOKENS // row))
            futures = engine.generate_batch(starts, static_prompt=static, max_batch_size=size, asynchronous=True,
                                            include_prompt_in_result=False, max_length=max_length, **kw)
            pending.append((members, futures))
        return {i: f.result() for members, futures in pending for i, f in zip(members, futures)}

    # -- generation ----------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        groups: dict[GenerationParams, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[r.params].append(i)
        for params, idxs in groups.items():
            try:
                seqs = dict(zip(idxs, self._encode([self.render(requests[i]) for i in idxs])))
                out = self._generate(seqs, idxs, params)
            except Exception as e:  # an engine failure fails these items, not the caller
                for i in idxs:
                    results[i] = Completion("", "error", error=f"{type(e).__name__}: {e}")
                continue
            for i in idxs:
                results[i] = out[i]
        return results  # type: ignore[return-value]

    def _generate(self, seqs: dict[int, list[int]], idxs: list[int], params: GenerationParams) -> dict[int, Completion]:
        import ctranslate2

        sample = params.temperature > 0
        kw = dict(
            max_length=params.max_new_tokens,
            repetition_penalty=params.repetition_penalty,
            end_token=self._eos_tokens,
            return_end_token=True,  # tells EOS apart from a sequence that hit max_length
            sampling_topk=0 if sample else 1,
            sampling_topp=params.top_p if sample else 1.0,
            sampling_temperature=params.temperature if sample else 1.0,
        )
        if sample:
            # A fresh single-replica engine: its worker thread seeds its sampler from the seed
            # set just before (see the module docstring), and one replica fixes the order.
            ctranslate2.set_random_seed(params.seed if params.seed is not None else 0)
            engine = ctranslate2.Generator(str(self.ct2_dir), device="cpu", compute_type=self.compute_type,
                                           inter_threads=1, intra_threads=self.threads)
            raw = self._run_groups(engine, seqs, idxs, 1, **kw)
            del engine
        else:
            raw = self._run_groups(self.generator, seqs, idxs, self.inter, **kw)
        out = {}
        for i in idxs:
            out[i] = completion_from_tokens(self.tokenizer, self._eos_ids, raw[i].sequences_ids[0], len(seqs[i]), params)
        return out

    # -- scoring -------------------------------------------------------------------------
    def choice_logprobs(self, requests: Sequence[Request], choices: Sequence[str]) -> list[dict[str, float]]:
        """Sum of token log-probs of each choice string right after the rendered prompt
        (transformers fp32 by default, see the module docstring)."""
        if self.logprobs == "transformers":
            if self._scorer is None:
                from .hf_local import HFLocalBackend

                self._scorer = HFLocalBackend(self.source, device="cpu", dtype="float32", batch_size=16)
            return self._scorer.choice_logprobs(requests, choices)
        return self._engine_logprobs(requests, choices)

    def _engine_logprobs(self, requests: Sequence[Request], choices: Sequence[str]) -> list[dict[str, float]]:
        import numpy as np

        prompts = self._encode([self.render(r) for r in requests])
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        scores: list[dict[str, float]] = [{} for _ in requests]
        if not requests:
            return scores
        if all(len(ids) == 1 for ids in choice_ids):
            # Single-token choices (the judge's "A"/"B"): the next-token distribution after one
            # forward of the prompt, as the transformers backend does. Prompts go in groups of
            # equal length: in a mixed batch the engine forwards only the shortest length at
            # once, and the first step's logits of a longer prompt would predict its own next
            # prompt token instead of the answer.
            by_len: dict[int, list[int]] = defaultdict(list)
            for i, p in enumerate(prompts):
                by_len[len(p)].append(i)
            pending = []
            for n, members in by_len.items():
                size = max(1, min(self.batch_size, SUB_BATCH_TOKENS // (n + 1)))
                futures = self.generator.generate_batch(
                    [self._toks(prompts[i]) for i in members], max_batch_size=size, asynchronous=True,
                    include_prompt_in_result=False, max_length=1, sampling_topk=1, return_logits_vocab=True)
                pending.append((members, futures))
            for members, futures in pending:
                for i, f in zip(members, futures):
                    logits = np.asarray(f.result().logits[0], dtype=np.float64).reshape(-1)
                    m = logits.max()
                    lse = m + math.log(float(np.exp(logits - m).sum()))
                    scores[i] = {c: float(logits[cid[0]] - lse) for c, cid in zip(choices, choice_ids)}
            return scores
        items = [(ri, ci) for ri in range(len(requests)) for ci in range(len(choices))]
        seqs = [self._toks(prompts[ri] + choice_ids[ci]) for ri, ci in items]
        row = max(len(x) for x in seqs)
        size = max(1, min(self.batch_size, math.ceil(len(seqs) / self.inter), SUB_BATCH_TOKENS // row))
        res = self.generator.score_batch(seqs, max_batch_size=size)
        for (ri, ci), r in zip(items, res):
            n = len(choice_ids[ci])
            # log_probs[k] is log P(token k+1 | tokens ..k): the choice's tokens are the last n
            scores[ri][choices[ci]] = float(sum(r.log_probs[-n:]))
        return scores
