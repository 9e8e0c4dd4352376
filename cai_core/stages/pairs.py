"""Stage: answer pairs to be judged — two samples of one model per prompt, or an SL run's
first answer vs its final revision (as the open CAI recipes do)."""
from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from typing import Sequence

from ..backends.base import Backend, GenerationParams, Request, chat
from ..ids import stable_id
from ..quality import output_flags
from ..types import Comparison, Generation, Prompt

__all__ = ["sample_id", "comparison_id", "sample_answers", "pair_samples", "sl_pair"]


def sample_id(run_id: str, prompt_id: str, k: int) -> str:
    return stable_id("sample", run_id, prompt_id, k)


def comparison_id(source: str, run_id: str | None, prompt_id: str, parent_a: str | None, parent_b: str | None) -> str:
    return stable_id("comparison", source, run_id, prompt_id, parent_a, parent_b)


def sample_answers(
    prompts: Sequence[Prompt], backend: Backend, params: GenerationParams, *, n: int, seed: int, run_id: str,
) -> tuple[list[Generation], list[tuple[str, str]]]:
    """n samples per prompt. Sample k uses seed + k, so each sample index is one batch with
    its own recorded seed. Returns the samples and (item id, error) for failed ones."""
    if n < 2:
        raise ValueError("pairs need at least 2 samples per prompt")
    requests, keys = [], []
    for k in range(n):
        p_k = replace(params, seed=seed + k)
        for p in prompts:
            requests.append(Request(chat(("user", p.text)), p_k))
            keys.append((p, k, p_k))
    samples, failures = [], []
    for (p, k, p_k), o in zip(keys, backend.generate(requests)):
        sid = sample_id(run_id, p.id, k)
        if not o.ok:
            failures.append((sid, o.error or "backend error"))
            continue
        text = o.text.strip()
        samples.append(Generation(
            id=sid, run_id=run_id, prompt_id=p.id, text=text, finish_reason=o.finish_reason,
            flags=output_flags(text, finish_reason=o.finish_reason, echo_of=(p.text,)),
            model=backend.id, params=p_k.as_dict(), prompt_tokens=o.prompt_tokens, completion_tokens=o.completion_tokens,
        ))
    return samples, failures


def pair_samples(prompt_id: str, samples: Sequence[dict], *, run_id: str, source: str = "samples") -> list[Comparison]:
    """One comparison per pair of a prompt's samples (rows with id, text, model), in id order."""
    ordered = sorted(samples, key=lambda s: s["id"])
    return [
        Comparison(
            id=comparison_id(source, run_id, prompt_id, a["id"], b["id"]), run_id=run_id, prompt_id=prompt_id,
            source=source, answer_a=a["text"], answer_b=b["text"], model_a=a["model"], model_b=b["model"],
            parent_a=a["id"], parent_b=b["id"],
        )
        for a, b in combinations(ordered, 2)
    ]


def sl_pair(prompt_id: str, run_id: str, first: dict, final: dict, model: str) -> Comparison:
    """First answer (A) vs final revision (B) of one prompt in an SL run."""
    return Comparison(
        id=comparison_id("sl", run_id, prompt_id, first["id"], final["id"]), run_id=run_id, prompt_id=prompt_id,
        source="sl", answer_a=first["text"], answer_b=final["text"], model_a=model, model_b=model,
        parent_a=first["id"], parent_b=final["id"],
    )
