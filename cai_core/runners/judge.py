"""Label comparisons with AI judges: for each comparison, k principles drawn per comparison,
both A/B orders, one or more judge models. Resumable: verdict ids are deterministic and each
chunk is written as soon as it is judged."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

from ..backends.base import Backend, GenerationParams
from ..ids import stable_id
from ..store.runs import find_or_create_run, set_status
from ..stages.judge import BACKEND_ERROR_PREFIX, draw_principles, judge
from ..store import Store
from ..types import Comparison, Constitution, Run, as_row

__all__ = ["JudgeConfig", "JudgeResult", "start_judge_run", "run_judge", "select_comparisons"]


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    mode: Literal["logprob", "cot"] = "logprob"
    """logprob: P(A)/P(B) from the next-token log-probs; cot: step-by-step, clamped probability."""
    principles: int = 1
    """Principles drawn per comparison (an ensemble when > 1)."""
    orders: tuple[str, ...] = ("AB", "BA")
    """Judge both orders to cancel position bias."""
    seed: int = 0
    clamp: tuple[float, float] = (0.4, 0.6)
    """CoT verdict probabilities, as in the paper."""
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=192, repetition_penalty=1.1))
    """Decoding for CoT judging (logprob mode generates nothing)."""
    source: str | None = None
    """Only comparisons of this source (samples | sl | compare)."""
    pairs_run: str | None = None
    """Only comparisons made by this run."""
    limit: int | None = None
    chunk: int = 16

    def __post_init__(self) -> None:
        if self.mode not in ("logprob", "cot"):
            raise ValueError("mode must be logprob or cot")
        if self.principles < 1:
            raise ValueError("--principles must be at least 1")
        if not self.orders or set(self.orders) - {"AB", "BA"}:
            raise ValueError("orders must be AB, BA or both")


@dataclass(frozen=True, slots=True)
class JudgeResult:
    run: Run
    status: str
    comparisons: int
    verdicts: int
    unparsed: int


def select_comparisons(store: Store, config: JudgeConfig) -> list[Comparison]:
    clauses, params = [], []
    if config.source:
        clauses.append("source = ?")
        params.append(config.source)
    if config.pairs_run:
        clauses.append("run_id = ?")
        params.append(config.pairs_run)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = ("SELECT id, run_id, prompt_id, source, answer_a, answer_b, model_a, model_b, parent_a, parent_b "
           f"FROM comparisons {where} ORDER BY created_at, id")
    if config.limit:
        sql += f" LIMIT {int(config.limit)}"
    return [Comparison(**r) for r in store.query(sql, params)]


def start_judge_run(store: Store, judges: Sequence[Backend], constitution: Constitution, config: JudgeConfig,
                    *, new_run: bool = False) -> tuple[Run, bool]:
    store.insert("constitutions", [{"version": constitution.version, "name": constitution.name,
                                    "title": constitution.title, "source": constitution.source}])
    ident = {k: getattr(config, k) for k in ("mode", "principles", "orders", "seed", "clamp", "source", "pairs_run", "limit")}
    if config.mode == "cot":
        ident["params"] = config.params.as_dict()
    return find_or_create_run(
        store, kind="judge", model=",".join(j.id for j in judges), seed=config.seed, new=new_run,
        config={"constitution": constitution.version, "judges": [j.id for j in judges], **ident},
        constitution_version=constitution.version,
    )


def run_judge(store: Store, judges: Sequence[Backend], constitution: Constitution, run: Run, config: JudgeConfig, *,
              progress: Callable[[int, int, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> JudgeResult:
    comparisons = select_comparisons(store, config)
    prompts = {r["id"]: r["text"] for r in store.query(
        "SELECT id, text FROM prompts WHERE id IN (SELECT prompt_id FROM comparisons)")}
    per = min(config.principles, len(constitution.principles)) * len(config.orders)
    set_status(store, run.id, "running")
    total = len(comparisons) * len(judges)
    done = 0
    cancelled = False
    for j in judges:
        have = {r["comparison_id"]: r["n"] for r in store.query(
            "SELECT comparison_id, count(*) AS n FROM verdicts WHERE run_id = ? AND judge = ? GROUP BY ALL", [run.id, j.id])}
        todo = [c for c in comparisons if have.get(c.id, 0) < per]
        done += len(comparisons) - len(todo)
        if progress:
            progress(done, total, f"judging with {j.id}")
        for i in range(0, len(todo), config.chunk):
            if should_stop and should_stop():
                cancelled = True
                break
            chunk = todo[i : i + config.chunk]
            principles_for = {c.id: draw_principles(constitution, c.id, config.principles, config.seed) for c in chunk}
            verdicts = judge(chunk, prompts, principles_for, j, mode=config.mode, orders=config.orders,
                             constitution_version=constitution.version, run_id=run.id, params=config.params,
                             clamp=config.clamp)
            # A backend failure is not a verdict: record it and leave the slot empty so a rerun retries it.
            failed = [v for v in verdicts if v.raw.startswith(BACKEND_ERROR_PREFIX)]
            store.insert("verdicts", [as_row(v) for v in verdicts if not v.raw.startswith(BACKEND_ERROR_PREFIX)])
            store.insert("failures", [{"id": stable_id("failure", v.id, time.time_ns()), "run_id": run.id, "item": v.id,
                                       "stage": "judge", "error": v.raw[len(BACKEND_ERROR_PREFIX):].strip() or "backend error"}
                                      for v in failed])
            done += len(chunk)
            if progress:
                progress(done, total, f"judging with {j.id}")
        if cancelled:
            break
    n_verdicts = store.count("verdicts", "WHERE run_id = ?", [run.id])
    complete = n_verdicts >= total * per
    status = "finished" if complete else ("cancelled" if cancelled else "incomplete")
    set_status(store, run.id, status)
    return JudgeResult(run, status, len(comparisons), n_verdicts,
                       store.count("verdicts", "WHERE run_id = ? AND choice IS NULL", [run.id]))
