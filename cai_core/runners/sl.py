"""Run the SL phase over a prompt set: first answers, then N critique -> revision rounds.

Work goes in waves (all first answers, then round 1 critiques, round 1 revisions, ...), each
wave in chunks sent to the backend as one batch and written to DuckDB as soon as the chunk
completes. Record ids are deterministic, so a rerun after a crash or a cancel computes only
what is missing: nothing lost, nothing done twice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from ..backends.base import Backend, Completion, GenerationParams
from ..constitutions import draw_principle
from ..ids import stable_id
from ..prompt_sets import prompts_of
from ..store.runs import find_or_create_run, set_status
from ..stages.generate import first_answers, generation_id
from ..stages.revise import Turn, critique_id, critique_step, revision_id, revision_step
from ..store import Store
from ..types import Constitution, Critique, Prompt, PromptSet, Run, as_row

__all__ = ["SLConfig", "SLResult", "start_sl_run", "run_sl", "Progress"]

Progress = Callable[[int, int, str], None]
"""progress(done, total, what) — called after every chunk."""


@dataclass(frozen=True, slots=True)
class SLConfig:
    rounds: int = 2
    """Critique -> revision rounds per prompt."""
    cot: bool = False
    """Ask for a step-by-step critique."""
    few_shot: int = 2
    """Constitution examples shown before each critique/revision (0 = none)."""
    limit: int | None = None
    """Use only the first K prompts of the set."""
    seed: int = 0
    """Seeds principle draws (and sampling when temperature > 0)."""
    answer: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=160, repetition_penalty=1.1))
    critique: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=96, repetition_penalty=1.1))
    revision: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=160, repetition_penalty=1.1))
    chunk: int = 64
    """Requests per backend call, and so per write: smaller loses less on a crash."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.chunk < 1:
            raise ValueError("chunk must be at least 1")

    def identity(self) -> dict:
        """The settings that define a run (chunk size does not change results' meaning)."""
        d = asdict(self)
        d.pop("chunk")
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
        from dataclasses import replace

        return replace(p, seed=seed)
    return p


def start_sl_run(
    store: Store, backend: Backend, constitution: Constitution, prompt_set: PromptSet,
    config: SLConfig, *, new_run: bool = False,
) -> tuple[Run, bool]:
    store.insert("constitutions", [{
        "version": constitution.version, "name": constitution.name,
        "title": constitution.title, "source": constitution.source,
    }])
    return find_or_create_run(
        store, kind="sl", model=backend.id, seed=config.seed, new=new_run,
        config={"prompt_set": prompt_set.id, "constitution": constitution.version, **config.identity()},
        constitution_version=constitution.version, prompt_set_id=prompt_set.id,
    )


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def run_sl(
    store: Store, backend: Backend, constitution: Constitution, run: Run, config: SLConfig, *,
    progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
) -> SLResult:
    """Do (or finish) the run's work. Safe to call again after any interruption."""
    assert run.prompt_set_id is not None
    prompts = prompts_of(store, run.prompt_set_id, limit=config.limit)
    ids = [p.id for p in prompts]
    rid = run.id

    def existing(table: str, cols: str) -> dict[str, dict]:
        rows = store.query(f"SELECT {cols} FROM {table} WHERE run_id = ?", [rid])
        return {r["id"]: r for r in rows}

    gens = existing("generations", "id, text")
    crits = existing("critiques", "*")
    revs = existing("revisions", "id, text")
    total = len(prompts) * (1 + 2 * config.rounds)
    done = sum(generation_id(rid, i) in gens for i in ids) + sum(
        (critique_id(rid, i, r) in crits) + (revision_id(rid, i, r) in revs)
        for i in ids for r in range(1, config.rounds + 1)
    )
    failed = 0
    cancelled = False
    set_status(store, rid, "running")

    def tick(n: int, what: str) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total, what)

    def record_failures(stage: str, items: list[tuple[str, Completion]]) -> None:
        nonlocal failed
        failed += len(items)
        store.insert("failures", [
            {"id": stable_id("failure", rid, item, stage, c.error, id(c)), "run_id": rid, "item": item,
             "stage": stage, "error": c.error or "unknown error"}
            for item, c in items
        ])

    def stop_requested() -> bool:
        nonlocal cancelled
        if should_stop and should_stop():
            cancelled = True
        return cancelled

    if progress:
        progress(done, total, "resuming" if done else "starting")

    # Wave 0: first answers.
    answer_params = _params(config.answer, config.seed)
    todo = [p for p in prompts if generation_id(rid, p.id) not in gens]
    for chunk in _chunks(todo, config.chunk):
        if stop_requested():
            break
        results = first_answers(chunk, backend, answer_params, run_id=rid)
        good = [g for _, _, g in results if g is not None]
        store.insert("generations", [as_row(g) for g in good])
        gens.update({g.id: {"id": g.id, "text": g.text} for g in good})
        record_failures("generate", [(generation_id(rid, p.id), o) for p, o, g in results if g is None])
        tick(len(good), "first answers")

    for rnd in range(1, config.rounds + 1):
        if cancelled:
            break
        # Critique wave: prompts whose answer for this round exists and critique does not.
        turns = []
        for p in prompts:
            if critique_id(rid, p.id, rnd) in crits:
                continue
            parent = generation_id(rid, p.id) if rnd == 1 else revision_id(rid, p.id, rnd - 1)
            source = gens if rnd == 1 else revs
            if parent in source:
                principle = draw_principle(constitution, seed=config.seed, key=f"{p.id}:{rnd}")
                turns.append(Turn(p, rnd, principle, source[parent]["text"], parent))
        for chunk in _chunks(turns, config.chunk):
            if stop_requested():
                break
            results = critique_step(chunk, backend, constitution, run_id=rid, cot=config.cot,
                                    few_shot=config.few_shot, params=_params(config.critique, config.seed))
            good = [c for _, _, c in results if c is not None]
            store.insert("critiques", [as_row(c) for c in good])
            crits.update({c.id: as_row(c) for c in good})
            record_failures("critique", [(critique_id(rid, t.prompt.id, rnd), o) for t, o, c in results if c is None])
            tick(len(good), f"round {rnd} critiques")

        # Revision wave.
        turns = []
        for p in prompts:
            cid = critique_id(rid, p.id, rnd)
            if revision_id(rid, p.id, rnd) in revs or cid not in crits:
                continue
            c = crits[cid]
            answer = (gens if rnd == 1 else revs)[c["parent_id"]]["text"]
            critique = Critique(**{k: (tuple(v) if k == "flags" else v) for k, v in c.items() if k != "created_at"})
            turns.append(Turn(p, rnd, constitution.principle(c["principle_id"]), answer, c["parent_id"], critique))
        for chunk in _chunks(turns, config.chunk):
            if stop_requested():
                break
            results = revision_step(chunk, backend, constitution, run_id=rid,
                                    few_shot=config.few_shot, params=_params(config.revision, config.seed))
            good = [r for _, _, r in results if r is not None]
            store.insert("revisions", [as_row(r) for r in good])
            revs.update({r.id: {"id": r.id, "text": r.text} for r in good})
            record_failures("revise", [(revision_id(rid, t.prompt.id, rnd), o) for t, o, r in results if r is None])
            tick(len(good), f"round {rnd} revisions")

    complete = all(revision_id(rid, i, config.rounds) in revs for i in ids)
    status = "finished" if complete else ("cancelled" if cancelled else "incomplete")
    set_status(store, rid, status, None if complete else f"{total - done} of {total} steps missing")
    counts = {t: store.count(t, "WHERE run_id = ?", [rid]) for t in ("generations", "critiques", "revisions")}
    return SLResult(run=run, created=False, status=status, prompts=len(prompts), failed=failed, **counts)
