"""What each judge mode adds to the plain question (:mod:`.verdicts`): the content-free inputs
that measure the letter prior (``calibrated``, ``fewshot``), the demonstrations (``fewshot``),
the one-answer question (``pointwise``) and the verdict scored after reasoning that stated
none (``cot-forced``)."""
from __future__ import annotations

import dataclasses
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Mapping, Sequence

from ...backends.base import Backend, Completion, GenerationParams, Request, chat
from ...prompts import render
from ...types import Comparison, Principle, Verdict
from .cot_parse import Letter, defang
from .verdicts import (LOGPROB_CONTINUATION, Mode, Order, _p_a, _unswap, judge_message, p_from_logprobs,
                       render_judge)

__all__ = ["POINTWISE_CONTINUATION", "CALIBRATED_MODES", "CONTENT_FREE", "DEMO_QUESTION", "FORCED_VERDICT",
           "render_pointwise", "judge_demos", "render_scored", "content_free_requests", "letter_prior",
           "force_verdicts", "checked_scores"]


POINTWISE_CONTINUATION = "Answer:"
"""Forced start of the judge's turn in pointwise mode: the next token is " Yes" or " No"."""


CALIBRATED_MODES = ("calibrated", "fewshot")
"""Modes whose letter prior is measured on content-free inputs and subtracted."""


CONTENT_FREE = ("N/A", "[no response]", "...")
"""Content-free answers (and prompt) whose verdicts measure the judge's letter prior (``calibrated``)."""


def render_pointwise(prompt_text: str, answer: str, principle: Principle, params: GenerationParams) -> Request:
    """The pointwise question about ONE answer (no other answer, so no position)."""
    msg = render("judge_pointwise", prompt=defang(prompt_text.strip()), answer=defang(answer.strip()),
                 preference=principle.preference.strip())
    return Request(chat(("user", msg)), params, continuation=POINTWISE_CONTINUATION)


@lru_cache(maxsize=1)
def judge_demos() -> tuple[dict, ...]:
    """The few-shot demonstrations (prompt, first, second, answer)."""
    path = resources.files("cai_core.prompts") / "judge_demos.jsonl"
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


DEMO_QUESTION = Principle("demo", "", "", "Which of these assistant responses is more helpful, honest and harmless?")
"""The question the demonstrations answer: the same for every principle, so every request of a
call starts with the same demonstrations (scored once as a shared prefix)."""


@lru_cache(maxsize=1)
def _demo_turns() -> tuple[tuple[str, str], ...]:
    turns: list[tuple[str, str]] = []
    for d in judge_demos():
        demo = Comparison(id="demo", run_id=None, prompt_id="demo", source="compare", answer_a=d["first"],
                          answer_b=d["second"])
        turns += [("user", judge_message(demo, d["prompt"], DEMO_QUESTION, "AB", "logprob")),
                  ("assistant", f"{LOGPROB_CONTINUATION}{d['answer']})")]
    return tuple(turns)


def render_scored(comparison: Comparison, prompt_text: str, principle: Principle, order: Order, mode: Mode,
                  params: GenerationParams) -> Request:
    """The request of a letter-scoring mode: the plain question, after the demonstrations in ``fewshot``."""
    req = render_judge(comparison, prompt_text, principle, order, "logprob", params)
    if mode != "fewshot":
        return req
    return dataclasses.replace(req, messages=(*chat(*_demo_turns()), *req.messages))


def content_free_requests(comparison: Comparison, principle: Principle, params: GenerationParams,
                          mode: Mode = "calibrated") -> list[Request]:
    """The judge's question with content-free prompt and answers (one per ``CONTENT_FREE`` text)."""
    return [render_scored(dataclasses.replace(comparison, answer_a=cf, answer_b=cf), cf, principle, "AB", mode, params)
            for cf in CONTENT_FREE]


def letter_prior(scores: Sequence[Mapping[str, float]]) -> float:
    """Mean log-odds of "A" over content-free verdicts (finite ones; 0.0 when there are none)."""
    diffs = [float(s["A"]) - float(s["B"]) for s in scores
             if isinstance(s, Mapping) and all(math.isfinite(float(s.get(k, math.nan))) for k in ("A", "B"))]
    return sum(diffs) / len(diffs) if diffs else 0.0


FORCED_VERDICT = "\nTherefore, the answer is ("
"""``cot-forced``: appended to reasoning that stated no verdict; the next letter is scored."""


FORCED_MARK = "\n[no verdict stated; forced: Therefore, the answer is ({letter}), P(first) {p:.3f}]"


def force_verdicts(verdicts: list[Verdict], reqs: Sequence[Request], outs: Sequence[Completion], backend: Backend,
                   clamp: tuple[float, float]) -> list[Verdict]:
    """``cot-forced``: where the reasoning stated no verdict, append ``FORCED_VERDICT`` to it and
    score "A" vs "B" next (one scoring call): P(first) is that probability clamped into
    [lo, hi] (the paper's CoT clamp). ``raw`` keeps the reasoning and says the verdict was forced."""
    todo = [i for i, (v, out) in enumerate(zip(verdicts, outs)) if v.choice is None and out.ok]
    if not todo:
        return verdicts
    forced = [dataclasses.replace(reqs[i], continuation=reqs[i].continuation + outs[i].text.rstrip() + FORCED_VERDICT)
              for i in todo]
    scores = checked_scores(backend, forced, ["A", "B"])
    out = list(verdicts)
    lo, hi = clamp
    for i, lp in zip(todo, scores):
        p = p_from_logprobs(lp)
        if p is None:
            continue
        v = verdicts[i]
        p_first = min(max(p, lo), hi)
        letter: Letter = "A" if p > 0.5 else "B"
        out[i] = dataclasses.replace(v, raw=v.raw + FORCED_MARK.format(letter=letter, p=p), p_first=p_first,
                                     p_a=_p_a(p_first, v.ab_order), choice=_unswap(letter, v.ab_order))  # type: ignore[arg-type]
    return out


def checked_scores(backend: Backend, reqs: list[Request], choices: list[str]) -> list[dict[str, float]]:
    scores = backend.choice_logprobs(reqs, choices) if reqs else []
    if len(scores) != len(reqs):
        raise RuntimeError(f"backend {backend.id!r} returned {len(scores)} scores for {len(reqs)} requests")
    return scores
