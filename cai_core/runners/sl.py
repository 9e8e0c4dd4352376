"""Run the SL phase over a prompt set: first answers, then N critique -> revision rounds.

Work goes in waves (all first answers, then round 1 critiques, round 1 revisions, ...), each
wave in chunks sent to the backend as one batch and written to DuckDB as soon as the chunk
completes. Record ids are deterministic, so a rerun after a crash or a cancel computes only
what is missing: nothing lost, nothing done twice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

from ..backends.base import Backend, Completion, GenerationParams
from ..constitutions import draw_principle
from ..prompt_sets import prompts_of
from ..stages.generate import first_answers, generation_id
from ..stages.revise import Turn, critique_id, critique_step, revision_id, revision_step
from ..stages.revision_search import revision_search_step
from ..store import Store
from ..store import records as records_store
from ..store import sl as sl_store
from ..store.constitutions import record_constitution
from ..store.runs import find_or_create_run, set_status
from ..types import Constitution, Failure, Prompt, PromptSet, Run, Split

__all__ = ["SLConfig", "SLResult", "start_sl_run", "run_sl", "sl_prompts_of", "Progress"]

Progress = Callable[[int, int, str], None]
"""progress(done, total, what) — called after every chunk."""


@dataclass(frozen=True, slots=True)
class SLConfig:
    rounds: int = 2
    """Critique -> revision rounds per prompt; 0 = first answers only (the model's own answers,
    e.g. to benign prompts, that an SFT snapshot can mix in as helpful samples)."""
    cot: bool = False
    """Ask for a step-by-step critique."""
    few_shot: int = 2
    """Constitution examples shown before each critique/revision (0 = none)."""
    split: Split | None = "train"
    """The prompt set's split to work on (None = every prompt); held-out prompts stay for evaluation."""
    limit: int | None = None
    """Use only the first K prompts (of the split)."""
    seed: int = 0
    """Seeds principle draws (and sampling when temperature > 0)."""
    answer: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=160, repetition_penalty=1.1))
    critique: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=96, repetition_penalty=1.1))
    revision: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=160, repetition_penalty=1.1))
    chunk: int = 64
    """Requests per backend call, and so per write: smaller loses less on a crash."""
    candidates: int = 1
    """Revision candidates per round: the greedy one, then (only when it is not acceptable)
    ``candidates - 1`` samples; the best by the scorer is kept (see stages.revision_search)."""
    candidate_temperature: float = 0.8
    """Sampling temperature of candidates 1.. (the revision settings otherwise)."""
    trim_truncated: bool = False
    """A first answer the token cap cut off mid-sentence is cut back to its last complete sentence
    (when that keeps most of it) instead of being flagged truncated: long helpful answers (how-to
    lists) stay usable as helpful samples (see stages.sentences.complete_part)."""
    answer_opening: str = ""
    """Make every first answer start with this text (``{task}`` = the request restated), which the
    model continues: e.g. "I won't {task}, because it could" on benign prompts gives a trained
    model's own refusals of them, the rejected side of contrast pairs (see labels.contrast)."""
    revision_sentences: int = 0
    """Keep only each revision's first N complete sentences (0 = all of it): a small model's
    objection and reason come first, and what follows drifts (see stages.sentences.first_sentences)."""

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError("rounds must be 0 (first answers only) or more")
        if self.candidates < 1:
            raise ValueError("candidates must be at least 1")
        if self.candidates > 1 and self.candidate_temperature <= 0:
            raise ValueError("candidate_temperature must be above 0 (samples must differ)")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.chunk < 1:
            raise ValueError("chunk must be at least 1")
        if self.revision_sentences < 0:
            raise ValueError("revision_sentences must be 0 (keep all) or more")

    def identity(self) -> dict:
        """The settings that define a run (chunk size does not change results' meaning)."""
        d = asdict(self)
        d.pop("chunk")
        if self.candidates == 1:  # no search: the same identity as before searches existed
            d.pop("candidates")
            d.pop("candidate_temperature")
        for k in ("revision_sentences", "trim_truncated", "answer_opening"):  # off: the same identity as before they existed
            if not d[k]:
                d.pop(k)
        for k in ("answer", "critique", "revision"):
            params = getattr(self, k)
            if params.temperature > 0 and params.seed is None:
                d[k]["seed"] = self.seed
        return d


@dataclass(frozen=True, slots=True)
class SLResult:
    run: Run
    created: bool
    status: str
    prompts: int
    generations: int
    critiques: int
    revisions: int
    failed: int
    """Items that failed in this invocation (retried by a rerun)."""


def _params(p: GenerationParams, seed: int) -> GenerationParams:
    if p.temperature > 0 and p.seed is None:
        return replace(p, seed=seed)
    return p


def start_sl_run(
    store: Store, backend: Backend, constitution: Constitution, prompt_set: PromptSet,
    config: SLConfig, *, new_run: bool = False,
) -> tuple[Run, bool]:
    record_constitution(store, constitution)
    return find_or_create_run(
        store, kind="sl", model=backend.id, seed=config.seed, new=new_run,
        config={"prompt_set": prompt_set.id, "constitution": constitution.version, **config.identity()},
        constitution_version=constitution.version, prompt_set_id=prompt_set.id,
    )


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


class _Waves:
    """One SL run's state while it works: what is stored, what is done, progress and cancel."""

    def __init__(self, store: Store, run: Run, config: SLConfig, prompts: list[Prompt], progress, should_stop) -> None:
        self.store, self.run, self.config, self.prompts = store, run, config, prompts
        self.gens = sl_store.sl_texts(store, run.id, "generations")
        self.crits = sl_store.sl_critiques(store, run.id)
        self.revs = sl_store.sl_texts(store, run.id, "revisions")
        self.total = len(prompts) * (1 + 2 * config.rounds)
        self.done = sum(generation_id(run.id, p.id) in self.gens for p in prompts) + sum(
            (critique_id(run.id, p.id, r) in self.crits) + (revision_id(run.id, p.id, r) in self.revs)
            for p in prompts for r in range(1, config.rounds + 1))
        self.failed = 0
        self.cancelled = False
        self._progress, self._should_stop = progress, should_stop

    def report(self, what: str) -> None:
        if self._progress:
            self._progress(self.done, self.total, what)

    def chunks(self, items: Sequence):
        """The items in chunks, stopping early when a cancel is requested."""
        for chunk in _chunks(items, self.config.chunk):
            if self._should_stop and self._should_stop():
                self.cancelled = True
                return
            yield chunk

    def stored(self, records: list, failures: list[tuple[str, Completion]], stage: str, what: str) -> None:
        """Write one chunk's records and failures, then count them."""
        records_store.insert(self.store, records)
        records_store.insert(self.store, [Failure.of(self.run.id, item, stage, c.error) for item, c in failures])
        self.failed += len(failures)
        self.done += len(records)
        self.report(what)

    def answer(self, rnd: int, parent_id: str) -> str | None:
        source = self.gens if rnd == 1 else self.revs
        return source[parent_id]["text"] if parent_id in source else None


def _answer_wave(w: _Waves, backend: Backend) -> None:
    params = _params(w.config.answer, w.config.seed)
    todo = [p for p in w.prompts if generation_id(w.run.id, p.id) not in w.gens]
    for chunk in w.chunks(todo):
        results = first_answers(chunk, backend, params, run_id=w.run.id, trim_truncated=w.config.trim_truncated,
                                opening=w.config.answer_opening)
        good = [g for _, _, g in results if g is not None]
        w.gens.update({g.id: {"id": g.id, "text": g.text} for g in good})
        w.stored(good, [(generation_id(w.run.id, p.id), o) for p, o, g in results if g is None], "generate", "first answers")


def _critique_wave(w: _Waves, backend: Backend, constitution: Constitution, rnd: int) -> None:
    """Prompts whose answer for this round exists and whose critique does not."""
    rid, turns = w.run.id, []
    for p in w.prompts:
        parent = generation_id(rid, p.id) if rnd == 1 else revision_id(rid, p.id, rnd - 1)
        answer = w.answer(rnd, parent)
        if critique_id(rid, p.id, rnd) not in w.crits and answer is not None:
            principle = draw_principle(constitution, seed=w.config.seed, key=f"{p.id}:{rnd}")
            turns.append(Turn(p, rnd, principle, answer, parent))
    for chunk in w.chunks(turns):
        results = critique_step(chunk, backend, constitution, run_id=rid, cot=w.config.cot,
                                few_shot=w.config.few_shot, params=_params(w.config.critique, w.config.seed))
        good = [c for _, _, c in results if c is not None]
        w.crits.update({c.id: c for c in good})
        w.stored(good, [(critique_id(rid, t.prompt.id, rnd), o) for t, o, c in results if c is None], "critique",
                 f"round {rnd} critiques")


def _revisions(w: _Waves, chunk: list[Turn], backend: Backend, constitution: Constitution) -> tuple[list, list]:
    """One chunk's revisions: (turn, completion, revision or None) and the candidates to store."""
    cfg, params = w.config, _params(w.config.revision, w.config.seed)
    if cfg.candidates == 1:
        return revision_step(chunk, backend, constitution, run_id=w.run.id, few_shot=cfg.few_shot, params=params,
                             sentences=cfg.revision_sentences), []
    sample = _params(replace(cfg.revision, temperature=cfg.candidate_temperature, seed=None), cfg.seed)
    found = revision_search_step(chunk, backend, constitution, run_id=w.run.id, few_shot=cfg.few_shot, params=params,
                                 candidates=cfg.candidates, sample=sample, sentences=cfg.revision_sentences)
    # candidates are stored with their kept revision; an item that failed is redone whole
    return [(t, o, r) for t, o, r, _ in found], [c for _, _, r, cands in found if r is not None for c in cands]


def _revision_wave(w: _Waves, backend: Backend, constitution: Constitution, rnd: int) -> None:
    rid, turns = w.run.id, []
    for p in w.prompts:
        c = w.crits.get(critique_id(rid, p.id, rnd))
        if c is not None and revision_id(rid, p.id, rnd) not in w.revs:
            turns.append(Turn(p, rnd, constitution.principle(c.principle_id), w.answer(rnd, c.parent_id) or "",
                              c.parent_id, c))
    for chunk in w.chunks(turns):
        results, candidates = _revisions(w, chunk, backend, constitution)
        good = [r for _, _, r in results if r is not None]
        w.revs.update({r.id: {"id": r.id, "text": r.text} for r in good})
        # before their revision, so a kept revision always has them; replaced, since a revision
        # missing after a crash is redone with its candidates
        records_store.insert(w.store, candidates, replace=True)
        w.stored(good, [(revision_id(rid, t.prompt.id, rnd), o) for t, o, r in results if r is None], "revise",
                 f"round {rnd} revisions")


def sl_prompts_of(store: Store, run: Run, config: SLConfig) -> list[Prompt]:
    """The prompts an SL run works on: its set's split (train by default), then the limit."""
    assert run.prompt_set_id is not None
    return prompts_of(store, run.prompt_set_id, split=config.split, limit=config.limit)


def run_sl(
    store: Store, backend: Backend, constitution: Constitution, run: Run, config: SLConfig, *,
    progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
) -> SLResult:
    """Do (or finish) the run's work. Safe to call again after any interruption."""
    prompts = sl_prompts_of(store, run, config)
    w = _Waves(store, run, config, prompts, progress, should_stop)
    set_status(store, run.id, "running")
    w.report("resuming" if w.done else "starting")
    _answer_wave(w, backend)
    for rnd in range(1, config.rounds + 1):
        if w.cancelled:
            break
        _critique_wave(w, backend, constitution, rnd)
        _revision_wave(w, backend, constitution, rnd)
    complete = all((revision_id(run.id, p.id, config.rounds) in w.revs) if config.rounds
                   else (generation_id(run.id, p.id) in w.gens) for p in prompts)
    status = "finished" if complete else ("cancelled" if w.cancelled else "incomplete")
    set_status(store, run.id, status, None if complete else f"{w.total - w.done} of {w.total} steps missing")
    return SLResult(run=run, created=False, status=status, prompts=len(prompts), failed=w.failed,
                    **sl_store.sl_counts(store, run.id))
