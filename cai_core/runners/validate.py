"""Validate judge configurations against a gold set: the same judge stage as ``cai judge``, on
pairs whose better answer is known. One validation run per (judge model, mode): its verdicts are
kept (gold_verdicts: raw text, choice, probability, principle, order, constitution version) and
its metrics recorded (judge_validations), so a judge run can say how far its labels can be
trusted. Resumable: verdict ids are deterministic and each chunk is written when judged."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..backends.base import Backend, GenerationParams
from ..gold.metrics import validation_metrics
from ..stages.judge import BACKEND_ERROR_PREFIX, draw_principles, judge
from ..store import Store
from ..store import gold as G
from ..store.constitutions import record_constitution
from ..store.runs import find_or_create_run, set_status
from ..types import COT_MODES, DEFAULT_JUDGE_MODE, GOLD_SPLITS, JUDGE_MODES, Comparison, Constitution, JudgeMode, Principle, Run

__all__ = ["ValidateConfig", "ValidationResult", "run_validation", "gold_comparisons"]

SPLIT_CHOICES = (*GOLD_SPLITS, "all")


@dataclass(frozen=True, slots=True)
class ValidateConfig:
    gold: str
    """The gold set's name (see :func:`cai_core.gold.sets.resolve_gold`)."""
    split: str = "test"
    """test (report), tune (choose settings), or all."""
    modes: tuple[JudgeMode, ...] = (DEFAULT_JUDGE_MODE,)
    """Judge modes validated side by side (each with every judge)."""
    principles: int | tuple[str, ...] = 1
    """Principles per pair: k drawn per pair, or these principle ids for every pair."""
    orders: tuple[str, ...] = ("AB", "BA")
    seed: int = 0
    limit: int | None = None
    categories: tuple[str, ...] = ()
    """Only pairs of these categories (empty: all)."""
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=192, repetition_penalty=1.1))
    clamp: tuple[float, float] = (0.4, 0.6)
    chunk: int = 16

    def __post_init__(self) -> None:
        bad = [m for m in self.modes if m not in JUDGE_MODES]
        if bad or not self.modes:
            raise ValueError(f"modes must be among {', '.join(JUDGE_MODES)}, not {', '.join(bad) or 'none'}")
        if self.split not in SPLIT_CHOICES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_CHOICES)}")
        if isinstance(self.principles, int) and self.principles < 1:
            raise ValueError("--principles must be at least 1 (or principle ids)")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")


@dataclass(frozen=True, slots=True)
class ValidationResult:
    run: Run
    judge: str
    mode: str
    status: str
    metrics: dict[str, Any]


def gold_comparisons(rows: Sequence[dict[str, Any]]) -> tuple[list[Comparison], dict[str, str], dict[str, str]]:
    """Gold rows as in-memory comparisons (never stored as comparisons: they are no training
    pairs), with prompt texts by id and the gold answer by id."""
    comps = [Comparison(id=r["id"], run_id=None, prompt_id=r["id"], source="compare", answer_a=r["answer_a"],
                        answer_b=r["answer_b"]) for r in rows]
    return comps, {r["id"]: r["prompt"] for r in rows}, {r["id"]: r["correct"] for r in rows}


def _principles_for(constitution: Constitution, config: ValidateConfig, ids: Sequence[str]) -> dict[str, list[Principle]]:
    if isinstance(config.principles, int):
        return {cid: draw_principles(constitution, cid, config.principles, config.seed) for cid in ids}
    by_id = {p.id: p for p in constitution.principles}
    missing = [p for p in config.principles if p not in by_id]
    if missing:
        raise ValueError(f"constitution {constitution.name!r} has no principle {', '.join(missing)}")
    return {cid: [by_id[p] for p in config.principles] for cid in ids}


def _start(store: Store, j: Backend, mode: str, constitution: Constitution, config: ValidateConfig,
           rows: Sequence[dict[str, Any]]) -> Run:
    pairs_hash = hashlib.sha256("\n".join(r["id"] for r in rows).encode()).hexdigest()[:16]
    ident = {"gold": config.gold, "split": config.split, "mode": mode, "principles": config.principles,
             "orders": config.orders, "limit": config.limit, "categories": config.categories, "pairs": pairs_hash,
             "constitution": constitution.version, "judge": j.id}
    if mode in COT_MODES:
        ident |= {"params": config.params.as_dict(), "clamp": config.clamp}
    run, _ = find_or_create_run(store, kind="validate", model=j.id, seed=config.seed, config=ident,
                                constitution_version=constitution.version)
    return run


def _judge_all(store: Store, run: Run, j: Backend, mode: str, constitution: Constitution, config: ValidateConfig,
               comps: list[Comparison], prompts: dict[str, str], step: Callable[[int], None],
               should_stop: Callable[[], bool] | None) -> bool:
    """Judge the pairs the run has no verdicts for yet; False when cancelled."""
    have = G.gold_verdict_counts(store, run.id, j.id)
    todo = [c for c in comps if not have.get(c.id)]
    step(len(comps) - len(todo))
    for i in range(0, len(todo), config.chunk):
        if should_stop and should_stop():
            return False
        chunk = todo[i : i + config.chunk]
        verdicts = judge(chunk, prompts, _principles_for(constitution, config, [c.id for c in chunk]), j, mode=mode,
                         orders=config.orders, constitution_version=constitution.version, run_id=run.id,
                         params=config.params, clamp=config.clamp)
        G.store_gold_verdicts(store, [v for v in verdicts if not v.raw.startswith(BACKEND_ERROR_PREFIX)])
        step(len(chunk))
    return True


def run_validation(store: Store, judges: Sequence[Backend], constitution: Constitution, config: ValidateConfig, *,
                   progress: Callable[[int, int, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> list[ValidationResult]:
    """Every (judge, mode) on the gold set's pairs of ``config.split``: metrics side by side."""
    rows = G.gold_pairs(store, config.gold, split=None if config.split == "all" else config.split,
                        categories=config.categories or None, limit=config.limit)
    if not rows:
        raise ValueError(f"gold set {config.gold!r} has no pairs in split {config.split!r}")
    record_constitution(store, constitution)
    comps, prompts, truth = gold_comparisons(rows)
    categories = {r["id"]: r["category"] for r in rows}
    lengths = {r["id"]: (len(r["answer_a"]), len(r["answer_b"])) for r in rows}
    total, done = len(comps) * len(judges) * len(config.modes), 0
    out: list[ValidationResult] = []
    for j in judges:
        for mode in config.modes:
            run = _start(store, j, mode, constitution, config, rows)
            set_status(store, run.id, "running")

            def step(n: int, label: str = f"validating {j.id} ({mode})") -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, total, label)

            finished = _judge_all(store, run, j, mode, constitution, config, comps, prompts, step, should_stop)
            metrics = validation_metrics(G.gold_verdicts(store, run.id), truth, categories, lengths)
            status = "finished" if finished else "cancelled"
            if finished:  # a cancelled run's partial numbers are shown, never recorded as the judge's
                G.record_validation(store, {
                    "run_id": run.id, "gold": config.gold, "split": config.split, "judge": j.id, "mode": mode,
                    "constitution_version": constitution.version, "n": metrics["n"], "accuracy": metrics["accuracy"],
                    "ci_lo": (metrics["accuracy_ci"] or [None, None])[0],
                    "ci_hi": (metrics["accuracy_ci"] or [None, None])[1],
                    "flip_rate": metrics["flip_rate"], "brier": metrics["brier"], "metrics": metrics})
            set_status(store, run.id, status)
            out.append(ValidationResult(run, j.id, mode, status, metrics))
            if not finished:
                return out
    return out
