"""Stage: search several revision candidates per (prompt, round) and keep the best.

A 135M model's greedy revision is often unusable: it copies a few-shot example ("contacting the
gym staff" for a WiFi question), talks about "the response", or refuses with boilerplate. The
search spends the engine's speed on quality instead: the greedy revision first; only when it is
not acceptable, samples of the same request, one wave at a time, until the turn has an
acceptable one or ``n - 1`` samples were drawn. Each candidate is scored by :func:`score_candidate`:

* the response classifier's kind (an explained objection is what SL-CAI should teach; a
  deflection or boilerplate refusal is evasion, incoherent text worthless),
* relevance to the request (share of the request's content words the text uses),
* quality flags, plus ``copied_example`` when it repeats a run of words from a few-shot example
  it was shown.

A candidate is *acceptable* when it is an objection that names a reason in the model's own words
(a harm, a right, the law; not just "because", and not only "instead, ..."; after a forced opening,
in the opening's sentence), on topic and unflagged. The best candidate
becomes the round's :class:`Revision` (same id as without a search, so everything downstream is
unchanged); when none is acceptable it is kept but flagged ``no_acceptable_candidate``, which an
SFT snapshot leaves out and counts. Every candidate is recorded (:class:`RevisionCandidate`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from ..backends.base import Backend, Completion, GenerationParams
from ..ids import stable_id
from ..types import Constitution, Revision, RevisionCandidate
from .compare.response_class import (ALTERNATIVE_MARKERS, EXPLANATION_MARKERS, classify_response, normalise_response,
                                     relevance)
from .revise import (Turn, few_shot_turns, parse_revision, render_revision, revision_id, revision_opening,
                     shown_examples)
from .sentences import first_sentences

__all__ = ["ACCEPTABLE_KINDS", "KIND_SCORE", "MIN_RELEVANCE", "COPY_WORDS", "NO_ACCEPTABLE", "CandidateScore",
           "CONCERNS", "REASONS", "candidate_id", "copies_example", "names_concern", "names_reason", "score_candidate", "revision_search_step"]

ACCEPTABLE_KINDS: tuple[str, ...] = ("objection",)
"""Kinds worth training a harmless-but-not-evasive model on."""
KIND_SCORE: dict[str, float] = {
    "objection": 1.0, "comply": 0.4, "refusal": 0.2, "disclaimed": 0.1, "deflection": -0.5,
    "incoherent": -1.0, "empty": -1.0,
}
"""What each classifier kind is worth; relevance and flags adjust it."""
MIN_RELEVANCE = 0.2
"""An acceptable candidate uses at least this share of the request's content words (when the
request has enough of them to tell)."""
COPY_WORDS = 8
"""A run of this many words shared with a shown few-shot example is a copy."""
CONNECTIVES = (r"\bbecause\b", r"\bsince\b", r"\bas (?:it|this|that)(?:'s| is| would| could| can| might| may| will)\b")
"""Explanation markers that only announce a reason ("because"); a forced opening can supply them."""
REASONS: tuple[str, ...] = tuple(m for m in EXPLANATION_MARKERS if m not in CONNECTIVES)
"""What an explained objection's reason names in the model's own words: a harm, a right, the law
(the classifier's explanation markers, minus the bare connectives)."""
CONCERNS: tuple[str, ...] = REASONS + ALTERNATIVE_MARKERS
"""A reason, or something better to do (the classifier's alternative markers)."""
_REASON = re.compile("|".join(REASONS))
_CONCERN = re.compile("|".join(CONCERNS))
NO_ACCEPTABLE = "no_acceptable_candidate"
"""Flag on a kept revision when no candidate was acceptable (SFT snapshots leave it out)."""


def candidate_id(run_id: str, prompt_id: str, round: int, idx: int) -> str:
    return stable_id("revision_candidate", run_id, prompt_id, round, idx)


@dataclass(frozen=True, slots=True)
class CandidateScore:
    kind: str
    relevance: float | None
    flags: tuple[str, ...]
    score: float
    acceptable: bool


_WORDS = re.compile(r"[a-z0-9']+")


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(normalise_response(text))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copies_example(text: str, examples: Sequence[str], *, prompt: str = "", n: int = COPY_WORDS) -> bool:
    """Does ``text`` repeat ``n`` consecutive words of one of ``examples`` (that the request
    itself does not contain)?"""
    mine = _grams(text, n) - _grams(prompt, n)
    return any(mine & _grams(e, n) for e in examples)


def names_concern(text: str) -> bool:
    """Does ``text`` name a concern or an alternative (not just "because")? "because it's
    illegal" does; "because I'm not a gun-making service" does not."""
    return bool(_CONCERN.search(normalise_response(text)))


def names_reason(text: str, *, first_sentence: bool = False) -> bool:
    """Does ``text`` (its first sentence, with ``first_sentence``) name a reason (:data:`REASONS`)?
    "because it's illegal" does; after a forced opening that ends in "because", "there's no way to
    do that. Just talk to a doctor." does not (the reason belongs in the because-clause, and an
    alternative is no reason)."""
    part = first_sentences(text, 1) or text if first_sentence else text
    return bool(_REASON.search(normalise_response(part)))


def score_candidate(prompt: str, text: str, flags: Sequence[str] = (), *, examples: Sequence[str] = (),
                    opening: str = "") -> CandidateScore:
    """Score one revision of ``prompt``; ``flags``: its quality flags; ``examples``: the few-shot
    texts it was shown (copying them is flagged ``copied_example``); ``opening``: the forced
    opening the text begins with. Kind and relevance are the whole text's (an opening that
    restates the request puts it on topic; "I won't help with that, because" does not); copying,
    the reason an acceptable objection must name (:func:`names_reason`) and the concern that adds
    to the score (:func:`names_concern`) are the model's own words."""
    flags = tuple(flags)
    own = text[len(opening):] if opening and text.startswith(opening) else text
    if own and "copied_example" not in flags and copies_example(own, examples, prompt=prompt):
        flags += ("copied_example",)
    kind = classify_response(text, prompt)
    rel = relevance(prompt, text)
    reason, concern = names_reason(own, first_sentence=bool(opening)), names_concern(own)
    score = (KIND_SCORE[kind] + 0.5 * (0.5 if rel is None else rel) + 0.25 * reason + 0.125 * concern
             - 0.5 * len(flags))
    acceptable = (kind in ACCEPTABLE_KINDS and reason and not flags and (rel is None or rel >= MIN_RELEVANCE))
    return CandidateScore(kind, rel, flags, round(score, 4), acceptable)


def _shown(constitution: Constitution, t: Turn, few_shot: int) -> list[str]:
    return [x for e in shown_examples(constitution.examples, t.principle, few_shot) for x in (e.answer, e.revision)]


def _candidate(t: Turn, out: Completion, idx: int, temperature: float, *, run_id: str, backend_id: str,
               examples: Sequence[str], sentences: int) -> tuple[RevisionCandidate, Revision | None]:
    rev = parse_revision(t, out, run_id=run_id, backend_id=backend_id, sentences=sentences) if out.ok else None
    text = rev.text if rev else ""
    s = score_candidate(t.prompt.text, text, rev.flags if rev else ("error",), examples=examples,
                        opening=revision_opening(t))
    cand = RevisionCandidate(
        id=candidate_id(run_id, t.prompt.id, t.round, idx), run_id=run_id, prompt_id=t.prompt.id, round=t.round,
        revision_id=revision_id(run_id, t.prompt.id, t.round), idx=idx, temperature=temperature, text=text,
        finish_reason=rev.finish_reason if rev else out.finish_reason, flags=s.flags, kind=s.kind, relevance=s.relevance, score=s.score,
        acceptable=s.acceptable)
    return cand, rev


def revision_search_step(
    turns: Sequence[Turn], backend: Backend, constitution: Constitution, *, run_id: str, few_shot: int,
    params: GenerationParams, candidates: int, sample: GenerationParams, sentences: int = 0,
) -> list[tuple[Turn, Completion, Revision | None, list[RevisionCandidate]]]:
    """For each turn: (turn, completion of the kept candidate, kept revision or None when every
    candidate failed, all candidates with ``kept`` set). ``params`` decodes candidate 0;
    ``sample`` the others, in up to ``candidates - 1`` waves (wave k: seed ``sample.seed + k``),
    each asked only for the turns that have no acceptable candidate yet. ``sentences`` > 0: each
    candidate is cut to its first that many sentences before it is scored (:func:`parse_revision`)."""
    shots = [few_shot_turns(constitution.examples, t.principle, few_shot, constitution) for t in turns]
    shown = [_shown(constitution, t, few_shot) for t in turns]
    outs = backend.generate([render_revision(t, shots=s, params=params) for t, s in zip(turns, shots)])
    pools: list[list[tuple[RevisionCandidate, Revision | None, Completion]]] = []
    for t, o, ex in zip(turns, outs, shown):
        cand, rev = _candidate(t, o, 0, params.temperature, run_id=run_id, backend_id=backend.id, examples=ex,
                               sentences=sentences)
        pools.append([(cand, rev, o)])
    need = [i for i, pool in enumerate(pools) if not pool[0][0].acceptable]
    extra = candidates - 1
    if extra > 0 and need:
        # each sample its own seed: servers that honour seeds would repeat one sample otherwise
        # waves: one sample per turn still without an acceptable candidate, until each has one or
        # the budget is spent ("stop when a candidate is good enough"); wave k samples with seed + k
        for k in range(extra):
            if not need:
                break
            p = replace(sample, seed=(sample.seed or 0) + k)
            sampled = backend.generate([render_revision(turns[i], shots=shots[i], params=p) for i in need])
            for i, o in zip(need, sampled):
                cand, rev = _candidate(turns[i], o, 1 + k, sample.temperature, run_id=run_id, backend_id=backend.id,
                                       examples=shown[i], sentences=sentences)
                pools[i].append((cand, rev, o))
            need = [i for i in need if not pools[i][-1][0].acceptable]
    results = []
    for t, pool in zip(turns, pools):
        usable = [(c, r, o) for c, r, o in pool if r is not None]
        if not usable:
            results.append((t, pool[0][2], None, [c for c, _, _ in pool]))
            continue
        best, rev, out = max(usable, key=lambda x: (x[0].acceptable, x[0].score, -x[0].idx))
        flags = best.flags if best.acceptable else (*best.flags, NO_ACCEPTABLE)
        kept = replace(rev, flags=flags)  # type: ignore[arg-type]
        results.append((t, out, kept, [replace(c, kept=c.id == best.id) for c, _, _ in pool]))
    return results
