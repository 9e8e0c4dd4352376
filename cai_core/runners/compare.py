"""Before/after evaluation: the same held-out prompts through several models (same decoding,
same seeds), every pair of models judged with the constitution in both orders, and a report
of win rates (Wilson 95 % intervals) and comply / objection / evasive rates per model.

A compare run is keyed by what it measures: the checkpoints (or model folders) the names
resolved to, the prompts, the decoding and the judge configuration. After a retrain, ``sft``
names another checkpoint, so the same command makes a new run with new answers.

Evaluation prompts must be held out: a model is refused when it, or any checkpoint it descends
from, trained on one of them, unless the caller allows it; the report then says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from ..backends.base import Backend, GenerationParams, Request, chat
from ..ids import stable_id
from ..lineage import training_overlap
from ..prompt_sets import prompts_of
from ..quality import output_flags
from ..labels.audits import effective_labels
from ..stages.compare import EvalReport, ModelLineage, build_report, classify_response, pair_schedule
from ..stages.pairs import comparison_id
from ..store import Store
from ..store import records
from ..store.compare import eval_answers
from ..store.runs import find_or_create_run, set_status
from ..store.training import save_report
from ..types import Checkpoint, Comparison, Constitution, Generation, Prompt, PromptSet, Run, Split
from .judge import JudgeConfig, run_judge, start_judge_run

__all__ = ["CompareConfig", "CompareModel", "compare_models", "TrainedOnEvalPrompts", "run_compare"]


@dataclass(frozen=True, slots=True)
class CompareConfig:
    split: Split | None = "held-out"
    """The prompt set's split to evaluate on (None = every prompt)."""
    limit: int | None = None
    offset: int = 0
    """Skip the first prompts of the split."""
    seed: int = 0
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=128, repetition_penalty=1.1))
    """Greedy by default, so every model is judged on its most likely answer."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    chunk: int = 16
    allow_trained: bool = False
    """Evaluate even when a model trained on some of the prompts (the report says "not held out")."""


@dataclass(frozen=True, slots=True)
class CompareModel:
    """One model to compare: its display name, what it resolved to, and how to load it."""

    name: str
    identity: str
    """What the name resolved to (a checkpoint id, a folder, a served model): the run's key."""
    load: Callable[[], Backend]
    """Called only when answers are missing, so a resumed comparison loads nothing it does not need."""
    checkpoint: Checkpoint | None = None


def compare_models(names: Sequence[str], *, checkpoint: Callable[[str], Checkpoint | None],
                   resolve: Callable[[str], str], load: Callable[[str], Backend], local: bool) -> list[CompareModel]:
    """Each name with the checkpoint it means (its identity in the run's key) and a loader.
    An alias without a checkpoint ('sft' before any SFT) is an error locally, and a served
    model's name on a server backend."""
    out = []
    for name in names:
        try:
            ckpt = checkpoint(name)
        except KeyError:
            if local:
                raise
            ckpt = None
        identity = ckpt.id if ckpt else (resolve(name) if local else name)
        out.append(CompareModel(name, identity, (lambda name=name: load(name)), ckpt))
    return out


class TrainedOnEvalPrompts(ValueError):
    """A compared model (or an ancestor) trained on evaluation prompts."""


def _answer_id(run_id: str, model_name: str, prompt_id: str) -> str:
    return stable_id("eval-answer", run_id, model_name, prompt_id)


def _lineage(store: Store, models: Sequence[CompareModel], prompts: list[Prompt], allow: bool) -> list[ModelLineage]:
    out = []
    for m in models:
        o = training_overlap(store, m.checkpoint, prompts)
        out.append(ModelLineage(m.name, o.checkpoint, o.snapshots, o.count))
    bad = [m for m in out if m.overlap_with_training]
    if bad and not allow:
        said = "; ".join(f"{m.name} (checkpoint {m.checkpoint}) trained on {m.overlap_with_training} of them"
                         for m in bad)
        raise TrainedOnEvalPrompts(
            f"these {len(prompts)} evaluation prompts are not held out: {said}. Evaluate on the held-out split "
            "(--split held-out, the default), or pass --allow-trained-prompts to evaluate anyway (the report "
            "is then stamped 'not held out').")
    return out


def _answers(store: Store, run: Run, m: CompareModel, prompts: list[Prompt], config: CompareConfig,
             params: GenerationParams, progress, done: int, total: int) -> tuple[dict[str, str], int]:
    """The model's answers (stored ones first, the missing ones generated and written chunk by chunk)."""
    have = eval_answers(store, run.id, m.name)
    todo = [p for p in prompts if p.id not in have]
    done += len(prompts) - len(todo)
    backend = m.load() if todo else None
    for i in range(0, len(todo), config.chunk):
        chunk = todo[i : i + config.chunk]
        outs = backend.generate([Request(chat(("user", p.text)), params) for p in chunk])  # type: ignore[union-attr]
        rows = []
        for p, o in zip(chunk, outs):
            if not o.ok:
                continue
            text = o.text.strip()
            rows.append(Generation(
                id=_answer_id(run.id, m.name, p.id), run_id=run.id, prompt_id=p.id, text=text,
                finish_reason=o.finish_reason, flags=output_flags(text, finish_reason=o.finish_reason, echo_of=(p.text,)),
                model=backend.id, params={**params.as_dict(), "model_name": m.name},  # type: ignore[union-attr]
                prompt_tokens=o.prompt_tokens, completion_tokens=o.completion_tokens))
            have[p.id] = text
        records.insert(store, rows)
        done += len(chunk)
        if progress:
            progress(done, total, f"answers of {m.name}")
    return have, done


def _pairs(run: Run, names: list[str], prompts: list[Prompt], answers: dict[str, dict[str, str]]) -> list[Comparison]:
    out = []
    for a, b in pair_schedule(names):
        for p in prompts:
            if p.id in answers[a] and p.id in answers[b]:
                pa, pb = _answer_id(run.id, a, p.id), _answer_id(run.id, b, p.id)
                out.append(Comparison(
                    id=comparison_id("compare", run.id, p.id, pa, pb), run_id=run.id, prompt_id=p.id, source="compare",
                    answer_a=answers[a][p.id], answer_b=answers[b][p.id], model_a=a, model_b=b, parent_a=pa, parent_b=pb))
    return out


def run_compare(
    store: Store, models: Sequence[CompareModel], judge_backend: Backend, constitution: Constitution,
    prompt_set: PromptSet, config: CompareConfig, *, new_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Run, EvalReport]:
    names = [m.name for m in models]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError("compare needs at least two models (all different)")
    prompts = prompts_of(store, prompt_set.id, split=config.split, limit=config.limit, offset=config.offset)
    if not prompts:
        raise ValueError(f"no prompts to evaluate in {prompt_set.name} ({config.split or 'all'}, offset {config.offset})")
    lineage = _lineage(store, models, prompts, config.allow_trained)
    run, _ = find_or_create_run(
        store, kind="compare", model=",".join(names), seed=config.seed, new=new_run, prompt_set_id=prompt_set.id,
        constitution_version=constitution.version,
        config={"models": [[m.name, m.identity] for m in models], "prompt_set": prompt_set.id, "split": config.split,
                "limit": config.limit, "offset": config.offset, "params": config.params.as_dict(),
                "judge": judge_backend.id, "mode": config.judge.mode, "principles": config.judge.principles},
    )
    set_status(store, run.id, "running")
    params = config.params if config.params.seed is not None else replace(config.params, seed=config.seed)
    answers: dict[str, dict[str, str]] = {}
    total, done = len(prompts) * len(names), 0
    for m in models:
        answers[m.name], done = _answers(store, run, m, prompts, config, params, progress, done, total)
    comparisons = _pairs(run, names, prompts, answers)
    records.insert(store, comparisons)

    jcfg = replace(config.judge, source="compare", pairs_run=run.id, limit=None)
    jrun, _ = start_judge_run(store, [judge_backend], constitution, jcfg)
    run_judge(store, [judge_backend], constitution, jrun, jcfg, progress=progress)
    labels = effective_labels(store, comparison_ids=[c.id for c in comparisons], runs=[jrun.id])
    outcomes = [(c.model_a, c.model_b, labels[c.id].choice if c.id in labels else None) for c in comparisons]
    texts = {p.id: p.text for p in prompts}
    classes = {n: [classify_response(t, texts.get(pid)) for pid, t in answers[n].items()] for n in names}
    report = build_report(names, outcomes, classes, len(prompts), lineage=lineage, prompt_set=prompt_set.name,
                          split=config.split)
    save_report(store, run.id, jrun.id, report.to_dict(), report.to_markdown())
    set_status(store, run.id, "finished")
    return run, report
