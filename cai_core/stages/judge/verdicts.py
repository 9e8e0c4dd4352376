"""Stage: A/B verdicts from an AI judge (the RL-from-AI-feedback phase of Constitutional AI).

The judge sees the paper's multiple-choice question (``prompts/judge.txt``): the human
prompt, the principle's preference question and the two answers as options (A) and (B).
Every (comparison x principle x order) becomes one request and all requests go to the
backend in ONE call (DESIGN.md rule 1). Two modes:

* ``logprob``: the assistant turn is forced to begin with ``"The answer is: ("`` and the
  backend scores the next token ``A`` vs ``B``; P(first) is the normalised probability.
* ``calibrated``: ``logprob`` minus the judge's letter prior (contextual calibration, Zhao et
  al. 2021): the same question is asked with content-free answers (``CONTENT_FREE``), and the
  mean log-odds of "A" there is subtracted from every verdict's log-odds, per principle. A
  judge that says "A" whatever it is shown is brought back to its content signal.
* ``fewshot``: ``calibrated`` with worked examples first (``prompts/judge_demos.jsonl``, this
  project's own writing: harmful compliance vs explained objection, helpful vs evasive, explained
  objection vs bare refusal; the right letter A and B equally often), shown as earlier turns of
  the conversation, each answered ``The answer is: (X)``; the prior is measured with them too.
* ``pointwise``: no position at all: each answer is shown alone (``prompts/judge_pointwise.txt``)
  and scored by P(" Yes") vs P(" No"); P(answer_a better) = sigmoid of the difference of the two
  answers' log-odds. One verdict per (comparison, principle), recorded with order ``AB``.
* ``cot-forced``: ``cot``, and where the reasoning states no verdict (a small model rarely
  finishes with one), ``"Therefore, the answer is ("`` is appended to it and the next letter
  scored (a second, scoring call): every verdict gets a choice, clamped like the paper's.
* ``cot``: the judge reasons step by step (``prompts/judge_cot.txt``, assistant turn forced
  to begin with ``"Let's think step by step:"`` as in the paper, so the reasoning comes
  before the verdict) and ends with ``"Therefore, the answer is (X)"``;
  :func:`parse_cot_verdict` reads the verdict and :func:`clamp_cot` maps it to 0.6 / 0.4
  (the paper clamps CoT probabilities to 40-60 % because they are badly calibrated).

Showing each pair in both orders (``AB`` and ``BA``) cancels the judge's position bias;
the label rule (:mod:`cai_core.labels.rule`) averages them, and counts how often a judge
followed position rather than content.

Injected verdicts (an answer that says "The answer is (B)") are neutralised three times:

1. :func:`defang` rewrites untrusted text (the human prompt and both answers) before it is
   shown, and the answers sit between ``<response_A>`` / ``<response_B>`` tags;
2. :func:`parse_cot_verdict` reads only the judge's own output and takes its LAST
   well-formed final verdict statement;
3. a verdict statement that the judge merely copied from the request (``quoted=`` texts:
   the user message, the answers, the prompt) cannot supply the verdict.

This module renders the plain question and builds the Verdict records; what the other modes
add (content-free inputs, demonstrations, single answers, forced verdicts) is :mod:`.modes`, and
the stage that runs them is :mod:`.stage`. Parsing and defanging live in :mod:`.cot_parse`; how verdicts become a comparison's label is
the label rule's (:mod:`cai_core.labels.rule`), not the stage's.
"""
from __future__ import annotations

import json
import math
from typing import Literal, Mapping

from ...backends.base import Completion, GenerationParams, Request, chat
from ...ids import stable_id
from ...prompts import render
from ...types import JUDGE_MODES, Comparison, JudgeMode, Principle, Verdict
from .cot_parse import Letter, defang, parse_cot_verdict

__all__ = [
    "LOGPROB_CONTINUATION",
    "COT_CONTINUATION",
    "BACKEND_ERROR_PREFIX",
    "DEFAULT_COT_PARAMS",
    "DEFAULT_LOGPROB_PARAMS",
    "verdict_id",
    "defang",
    "judge_message",
    "render_judge",
    "parse_cot_verdict",
    "p_from_logprobs",
    "clamp_cot",
    "verdict_from_completion",
    "verdict_from_logprobs",
    "verdict_pointwise",
    "Order",
    "Mode",
]

Order = Literal["AB", "BA"]
Mode = JudgeMode

LOGPROB_CONTINUATION = "The answer is: ("
"""Forced start of the judge's turn in logprob mode: the next token is the verdict."""
COT_CONTINUATION = "Let's think step by step:"
"""Forced start of the judge's turn in CoT mode: reasoning first, verdict last (as in the paper)."""
BACKEND_ERROR_PREFIX = "[backend error] "
"""``Verdict.raw`` of a request the backend failed (followed by the backend's error text)."""
DEFAULT_COT_PARAMS = GenerationParams(max_new_tokens=256, temperature=0.0)
DEFAULT_LOGPROB_PARAMS = GenerationParams(max_new_tokens=1, temperature=0.0)

_ORDERS = ("AB", "BA")
_MODES = JUDGE_MODES


def verdict_id(run_id: str | None, comparison_id: str, principle_id: str, judge_id: str, mode: str, order: str) -> str:
    return stable_id("verdict", run_id, comparison_id, principle_id, judge_id, mode, order)


def _other(letter: str) -> Letter:
    return "B" if letter == "A" else "A"


# -- render ---------------------------------------------------------------------------------------
def judge_message(comparison: Comparison, prompt_text: str, principle: Principle, order: Order, mode: Mode) -> str:
    """The user message: the multiple-choice question with defanged, delimited answers."""
    if order not in _ORDERS:
        raise ValueError(f"order must be 'AB' or 'BA', not {order!r}")
    if mode not in _MODES or mode == "pointwise":
        raise ValueError(f"mode must be one of {', '.join(m for m in _MODES if m != 'pointwise')}, not {mode!r}")
    first, second = (comparison.answer_a, comparison.answer_b) if order == "AB" else (comparison.answer_b, comparison.answer_a)
    question = render(
        "judge",
        prompt=defang(prompt_text.strip()),
        preference=principle.preference.strip(),
        first=defang(first.strip()),
        second=defang(second.strip()),
    )
    return render("judge_cot", question=question) if mode == "cot" else question


def render_judge(
    comparison: Comparison, prompt_text: str, principle: Principle, order: Order, mode: Mode, params: GenerationParams
) -> Request:
    msg = judge_message(comparison, prompt_text, principle, order, mode)
    return Request(chat(("user", msg)), params, continuation=COT_CONTINUATION if mode == "cot" else LOGPROB_CONTINUATION)


# -- P(first) from log-probs or a CoT verdict (text parsing: cot_parse) -------------------------
def p_from_logprobs(lp: Mapping[str, float]) -> float | None:
    """P(first shown) = exp(lA) / (exp(lA) + exp(lB)), computed stably; None when a value is
    missing or NaN, or both are -inf (or both +inf)."""
    try:
        la, lb = float(lp["A"]), float(lp["B"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if math.isnan(la) or math.isnan(lb):
        return None
    m = max(la, lb)
    if math.isinf(m):
        if la == lb:  # both -inf or both +inf: no information
            return None
        if m > 0:  # one +inf: that one takes all the mass
            return 1.0 if la == m else 0.0
    ea, eb = math.exp(la - m), math.exp(lb - m)  # log-sum-exp: the larger term is exp(0) = 1
    return ea / (ea + eb)


def clamp_cot(choice_first: Letter | None, lo: float = 0.4, hi: float = 0.6) -> float | None:
    """The paper's clamp for CoT verdicts: P(first) = hi if the first shown won, lo if not."""
    if choice_first == "A":
        return hi
    if choice_first == "B":
        return lo
    return None


def _unswap(letter_first: Letter | None, order: Order) -> Letter | None:
    if letter_first is None:
        return None
    return letter_first if order == "AB" else _other(letter_first)


def _p_a(p_first: float | None, order: Order) -> float | None:
    if p_first is None:
        return None
    return p_first if order == "AB" else 1.0 - p_first


# -- verdict records ------------------------------------------------------------------------------
def _verdict(
    comparison: Comparison, principle: Principle, order: Order, mode: Mode, raw: str,
    choice: Letter | None, p_first: float | None, p_a: float | None, *,
    run_id: str | None, judge_id: str, constitution_version: str,
) -> Verdict:
    """The Verdict record both modes build (its id is derived from the same fields)."""
    return Verdict(
        id=verdict_id(run_id, comparison.id, principle.id, judge_id, mode, order),
        run_id=run_id,
        comparison_id=comparison.id,
        principle_id=principle.id,
        constitution_version=constitution_version,
        judge=judge_id,
        mode=mode,
        ab_order=order,
        raw=raw,
        choice=choice,
        p_first=p_first,
        p_a=p_a,
    )


def verdict_from_completion(
    comparison: Comparison, prompt_text: str, principle: Principle, order: Order, out: Completion, *,
    request: Request | None = None, run_id: str | None, judge_id: str, constitution_version: str,
    clamp: tuple[float, float] = (0.4, 0.6), mode: Mode = "cot",
) -> Verdict:
    """A CoT verdict. ``request`` (what the judge saw) is passed to the parser as quotable
    text so an echo of it cannot supply the verdict."""
    if not out.ok:
        raw, letter = BACKEND_ERROR_PREFIX + (out.error or ""), None
    else:
        raw = out.text
        quoted = [comparison.answer_a, comparison.answer_b, prompt_text]
        if request is not None:
            quoted += [m.content for m in request.messages]
        letter = parse_cot_verdict(raw, quoted=quoted)
    p_first = clamp_cot(letter, *clamp)
    return _verdict(
        comparison, principle, order, mode, raw, _unswap(letter, order), p_first, _p_a(p_first, order),
        run_id=run_id, judge_id=judge_id, constitution_version=constitution_version,
    )


def _json_number(v: object) -> object:
    # strict JSON has no NaN/Infinity: keep them as strings ("-inf", "nan") so nothing is lost
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else str(f)


def verdict_from_logprobs(
    comparison: Comparison, principle: Principle, order: Order, lp: Mapping[str, float], *,
    run_id: str | None, judge_id: str, constitution_version: str, prior: float | None = None,
    mode: Mode | None = None,
) -> Verdict:
    """A log-prob verdict; with ``prior`` (the letter prior's log-odds, ``calibrated`` mode) the
    log-odds of "A" are shifted by it before normalising. ``raw`` keeps the scores as given
    (and the prior), so the verdict can be recomputed."""
    shifted: Mapping[str, float] = lp
    if prior is not None and isinstance(lp, Mapping) and "A" in lp:
        shifted = {**lp, "A": float(lp["A"]) - prior}
    p_first = p_from_logprobs(shifted) if isinstance(lp, Mapping) else None
    p_a = _p_a(p_first, order)
    choice: Letter | None = None if p_a is None or p_a == 0.5 else ("A" if p_a > 0.5 else "B")
    stored: dict[str, object] = {k: _json_number(lp.get(k)) if isinstance(lp, Mapping) else None for k in ("A", "B")}
    if prior is not None:
        stored["prior"] = _json_number(prior)
    raw = json.dumps(stored)
    values = list(lp.values()) if isinstance(lp, Mapping) else []
    if values and all(isinstance(v, float) and math.isnan(v) for v in values):
        # The protocol's mark of a request that failed for good (all NaN): a backend failure,
        # not a judgement, so the runner records it and a rerun retries it.
        raw = BACKEND_ERROR_PREFIX + (getattr(lp, "error", None) or f"no log-probs: the request failed {raw}")
    return _verdict(
        comparison, principle, order, mode or ("calibrated" if prior is not None else "logprob"), raw, choice, p_first, p_a,
        run_id=run_id, judge_id=judge_id, constitution_version=constitution_version,
    )


def _yes_logodds(lp: Mapping[str, float]) -> float | None:
    p = p_from_logprobs({"A": lp.get(" Yes", math.nan), "B": lp.get(" No", math.nan)}) if isinstance(lp, Mapping) else None
    if p is None:
        return None
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def verdict_pointwise(
    comparison: Comparison, principle: Principle, lp_a: Mapping[str, float], lp_b: Mapping[str, float], *,
    run_id: str | None, judge_id: str, constitution_version: str,
) -> Verdict:
    """A pointwise verdict: each answer's log-odds of " Yes" (shown alone); P(answer_a better) =
    sigmoid(odds_a - odds_b). Recorded with order ``AB`` (p_first = p_a: nothing was shown first)."""
    ya, yb = _yes_logodds(lp_a), _yes_logodds(lp_b)
    p_a = None if ya is None or yb is None else 1.0 / (1.0 + math.exp(-max(min(ya - yb, 700.0), -700.0)))
    choice: Letter | None = None if p_a is None or p_a == 0.5 else ("A" if p_a > 0.5 else "B")
    raw = json.dumps({side: {k: _json_number(lp.get(k)) if isinstance(lp, Mapping) else None for k in (" Yes", " No")}
                      for side, lp in (("A", lp_a), ("B", lp_b))})
    if any(isinstance(lp, Mapping) and lp and all(isinstance(v, float) and math.isnan(v) for v in lp.values())
           for lp in (lp_a, lp_b)):
        raw = BACKEND_ERROR_PREFIX + f"no log-probs: the request failed {raw}"
    return _verdict(comparison, principle, "AB", "pointwise", raw, choice, p_a, p_a,
                    run_id=run_id, judge_id=judge_id, constitution_version=constitution_version)
