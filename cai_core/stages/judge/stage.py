"""The judge stage: every (comparison x principle x order) of a chunk, in one backend call per
mode (two for ``cot-forced``), as Verdict records (see :mod:`.verdicts` and :mod:`.modes`)."""
from __future__ import annotations

import hashlib
import random
from typing import Iterable, Mapping, Sequence

from ...backends.base import Backend, GenerationParams
from ...types import COT_MODES, LOGPROB_MODES, Comparison, Constitution, Principle, Verdict
from .modes import CALIBRATED_MODES, checked_scores, content_free_requests, force_verdicts, letter_prior, render_pointwise, render_scored
from .verdicts import (DEFAULT_COT_PARAMS, DEFAULT_LOGPROB_PARAMS, JUDGE_MODES, Mode, Order, render_judge,
                       verdict_from_completion, verdict_from_logprobs, verdict_pointwise)

__all__ = ["judge", "draw_principles"]

_ORDERS = ("AB", "BA")
_MODES = JUDGE_MODES


Item = tuple[Comparison, str, Principle, Order]


def _judge_logprob(items: list[Item], backend: Backend, mode: Mode, params: GenerationParams, common: dict) -> list[Verdict]:
    """``logprob``, ``calibrated`` and ``fewshot``: ONE scoring call (the content-free requests
    that measure the letter prior ride along)."""
    reqs = [render_scored(c, text, p, o, mode, params) for c, text, p, o in items]
    calibrate = mode in CALIBRATED_MODES
    principles = {p.id: (c, p) for c, _, p, _ in items} if calibrate else {}
    free = {pid: content_free_requests(c, p, params, mode) for pid, (c, p) in principles.items()}
    free_reqs = [r for rs in free.values() for r in rs]
    scores = checked_scores(backend, reqs + free_reqs, ["A", "B"])
    priors: dict[str, float] = {}
    at = len(reqs)
    for pid, rs in free.items():
        priors[pid] = letter_prior(scores[at : at + len(rs)])
        at += len(rs)
    return [verdict_from_logprobs(c, p, o, lp, prior=priors.get(p.id) if calibrate else None, mode=mode, **common)
            for (c, _, p, o), lp in zip(items, scores[: len(reqs)])]


def _judge_pointwise(items: list[Item], backend: Backend, params: GenerationParams, common: dict) -> list[Verdict]:
    pairs = list({(c.id, p.id): (c, text, p) for c, text, p, _ in items}.values())  # orders play no part
    reqs = [render_pointwise(text, ans, p, params) for c, text, p in pairs for ans in (c.answer_a, c.answer_b)]
    scores = checked_scores(backend, reqs, [" Yes", " No"])
    return [verdict_pointwise(c, p, scores[2 * i], scores[2 * i + 1], **common) for i, (c, _, p) in enumerate(pairs)]


def judge(
    comparisons: Iterable[Comparison],
    prompts: Mapping[str, str],
    principles_for: Mapping[str, Sequence[Principle]],
    backend: Backend,
    *,
    mode: Mode,
    orders: Sequence[Order] = ("AB", "BA"),
    constitution_version: str,
    run_id: str | None,
    params: GenerationParams | None = None,
    clamp: tuple[float, float] = (0.4, 0.6),
) -> list[Verdict]:
    """One verdict per (comparison x principle x order) (pointwise: per comparison x principle),
    from ONE backend call.

    ``prompts``: prompt_id -> prompt text; ``principles_for``: comparison_id -> the principles
    to judge it by (see :func:`draw_principles`). Raises KeyError for a comparison whose
    prompt or principles are missing (before calling the backend), ValueError for an unknown
    mode/order, and lets :class:`LogprobsUnsupported` propagate (the caller retries in CoT).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
    orders = tuple(orders)
    bad = [o for o in orders if o not in _ORDERS]
    if bad or not orders:
        raise ValueError(f"orders must be a non-empty subset of ('AB', 'BA'), not {orders!r}")
    if params is None:
        params = DEFAULT_COT_PARAMS if mode in COT_MODES else DEFAULT_LOGPROB_PARAMS
    items: list[Item] = []
    for c in comparisons:
        if c.prompt_id not in prompts:
            raise KeyError(f"comparison {c.id!r}: no text for prompt {c.prompt_id!r}")
        if c.id not in principles_for:
            raise KeyError(f"comparison {c.id!r}: no principles to judge it by")
        for p in principles_for[c.id]:
            for o in orders:
                items.append((c, prompts[c.prompt_id], p, o))
    if not items:
        return []
    common = dict(run_id=run_id, judge_id=backend.id, constitution_version=constitution_version)
    if mode == "pointwise":
        return _judge_pointwise(items, backend, params, common)
    if mode in LOGPROB_MODES:
        return _judge_logprob(items, backend, mode, params, common)
    reqs = [render_judge(c, text, p, o, "cot", params) for c, text, p, o in items]
    outs = backend.generate(reqs)
    if len(outs) != len(reqs):
        raise RuntimeError(f"backend {backend.id!r} returned {len(outs)} completions for {len(reqs)} requests")
    verdicts = [
        verdict_from_completion(c, text, p, o, out, request=r, clamp=clamp, mode=mode, **common)
        for (c, text, p, o), r, out in zip(items, reqs, outs)
    ]
    return force_verdicts(verdicts, reqs, outs, backend, clamp) if mode == "cot-forced" else verdicts


def draw_principles(constitution: Constitution, comparison_id: str, k: int, seed: int) -> list[Principle]:
    """k distinct principles (at most as many as there are), the same for the same
    (seed, comparison_id). Keyed apart from the critique draws of the SL stage."""
    n = min(max(int(k), 0), len(constitution.principles))
    digest = hashlib.sha256(f"{seed}:judge:{comparison_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).sample(list(constitution.principles), n)
