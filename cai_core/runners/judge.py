"""Label comparisons with AI judges: for each comparison, k principles drawn per comparison,
both A/B orders, one or more judge models. Resumable: verdict ids are deterministic and each
chunk is written as soon as it is judged."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from ..backends.base import Backend, GenerationParams
from ..stages.judge import BACKEND_ERROR_PREFIX, draw_principles, judge
from ..store import Store
from ..store import records
from ..store.comparisons import comparisons_for_judging, latest_training_pairs_run
from ..store.constitutions import record_constitution
from ..store.prompts import prompt_texts
from ..store.runs import find_or_create_run, set_status
from ..store.verdicts import count_verdicts, verdicts_per_comparison
from ..types import COT_MODES, DEFAULT_JUDGE_MODE, COMPARISON_SOURCES, JUDGE_MODES, PREFERENCE_SOURCES, Comparison, Constitution, Failure, JudgeMode, Run

__all__ = ["JudgeConfig", "JudgeResult", "with_default_selection", "start_judge_run", "run_judge", "select_comparisons"]


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    mode: JudgeMode = DEFAULT_JUDGE_MODE
    """How the judge decides (see ``JUDGE_MODES``); the default was chosen on the gold set."""
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
    """Only comparisons of this source (samples | sl | compare); None = samples and sl (training
    pairs: the evaluation pairs of ``compare`` are judged only when asked for by name)."""
    pairs_run: str | None = None
    """Only comparisons made by this run (a pairs run, or an SL run's first-vs-final pairs)."""
    judge_models: tuple[str, ...] = ()
    """The models behind the judges, as resolved (recorded so a what-if can judge the same way)."""
    limit: int | None = None
    chunk: int = 16

    def __post_init__(self) -> None:
        if self.mode not in JUDGE_MODES:
            raise ValueError(f"mode must be one of {', '.join(JUDGE_MODES)}")
        if self.source is not None and self.source not in COMPARISON_SOURCES:
            raise ValueError(f"source must be one of {', '.join(COMPARISON_SOURCES)}")
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


def with_default_selection(store: Store, config: JudgeConfig) -> JudgeConfig:
    """The config as given, or, when it names neither a pairs run nor a source, the pairs made
    most recently (never all comparisons in the store)."""
    if config.pairs_run is not None or config.source is not None:
        return config
    latest = latest_training_pairs_run(store)
    if latest is None:
        raise ValueError("no comparisons to judge: run `cai pairs` (or `cai pairs --from-sl RUN`) first")
    return replace(config, pairs_run=latest)


def select_comparisons(store: Store, config: JudgeConfig) -> list[Comparison]:
    sources = (config.source,) if config.source else PREFERENCE_SOURCES
    return comparisons_for_judging(store, sources=sources, runs=[config.pairs_run] if config.pairs_run else None,
                                   limit=config.limit)


def start_judge_run(store: Store, judges: Sequence[Backend], constitution: Constitution, config: JudgeConfig,
                    *, new_run: bool = False) -> tuple[Run, bool]:
    record_constitution(store, constitution)
    ident = {k: getattr(config, k) for k in ("mode", "principles", "orders", "seed", "clamp", "source", "pairs_run", "limit",
                                             "judge_models")}
    if config.mode in COT_MODES:
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
    prompts = prompt_texts(store, sorted({c.prompt_id for c in comparisons}))
    per = min(config.principles, len(constitution.principles)) * len(config.orders)
    set_status(store, run.id, "running")
    total = len(comparisons) * len(judges)
    done = 0
    cancelled = False
    for j in judges:
        have = verdicts_per_comparison(store, run.id, j.id)
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
            records.insert(store, [v for v in verdicts if not v.raw.startswith(BACKEND_ERROR_PREFIX)])
            records.insert(store, [Failure.of(run.id, v.id, "judge", v.raw[len(BACKEND_ERROR_PREFIX):].strip() or "backend error")
                                   for v in failed])
            done += len(chunk)
            if progress:
                progress(done, total, f"judging with {j.id}")
        if cancelled:
            break
    n_verdicts = count_verdicts(store, run.id)
    complete = n_verdicts >= total * per
    status = "finished" if complete else ("cancelled" if cancelled else "incomplete")
    set_status(store, run.id, status)
    return JudgeResult(run, status, len(comparisons), n_verdicts,
                       count_verdicts(store, run.id, unparsed=True))
