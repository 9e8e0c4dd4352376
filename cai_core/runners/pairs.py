"""Build comparisons: sample n answers per prompt from a model (resumable, written chunk by
chunk), or pair an SL run's first answers with their final revisions."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from ..backends.base import Backend, GenerationParams
from ..prompt_sets import prompts_of
from ..stages.pairs import pair_samples, sample_answers, sl_pair
from ..store import Store
from ..store import comparisons as cmp_store
from ..store import records
from ..store.runs import find_or_create_run, get_run, set_status
from ..store.sl import first_answers_of
from ..types import Failure, PromptSet, Run, Split

__all__ = ["PairsConfig", "PairsResult", "start_pairs_run", "run_pairs", "pairs_from_sl"]


@dataclass(frozen=True, slots=True)
class PairsConfig:
    n: int = 2
    """Samples per prompt (every pair of them is a comparison)."""
    split: Split | None = "train"
    """The prompt set's split to sample on (None = every prompt)."""
    limit: int | None = None
    seed: int = 0
    params: GenerationParams = field(default_factory=lambda: GenerationParams(
        max_new_tokens=128, temperature=0.9, top_p=0.95, repetition_penalty=1.1))
    chunk: int = 16
    """Prompts per backend call and per write."""

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("--n must be at least 2")
        if self.params.temperature <= 0:
            raise ValueError("pairs need sampling: temperature must be > 0")


@dataclass(frozen=True, slots=True)
class PairsResult:
    run: Run
    created: bool
    status: str
    prompts: int
    comparisons: int
    failed: int


def start_pairs_run(store: Store, backend: Backend, prompt_set: PromptSet, config: PairsConfig, *, new_run: bool = False):
    ident = asdict(config)
    ident.pop("chunk")
    return find_or_create_run(
        store, kind="pairs", model=backend.id, seed=config.seed, new=new_run,
        config={"prompt_set": prompt_set.id, **ident}, prompt_set_id=prompt_set.id,
    )


def run_pairs(store: Store, backend: Backend, run: Run, config: PairsConfig, *,
              progress: Callable[[int, int, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> PairsResult:
    prompts = prompts_of(store, run.prompt_set_id, split=config.split, limit=config.limit)
    rid = run.id
    set_status(store, rid, "running")
    have = cmp_store.samples_by_prompt(store, rid)
    todo = [p for p in prompts if len(have.get(p.id, ())) < config.n]
    done = len(prompts) - len(todo)
    failed = 0
    cancelled = False
    if progress:
        progress(done, len(prompts), "sampling")
    for i in range(0, len(todo), config.chunk):
        if should_stop and should_stop():
            cancelled = True
            break
        chunk = todo[i : i + config.chunk]
        samples, failures = sample_answers(chunk, backend, config.params, n=config.n, seed=config.seed, run_id=rid)
        records.insert(store, samples)
        records.insert(store, [Failure.of(rid, item, "pairs", err) for item, err in failures])
        failed += len(failures)
        done += len(chunk)
        if progress:
            progress(done, len(prompts), "sampling")
    # Pair whatever complete sample sets exist (also after a crash between the two writes).
    have = cmp_store.samples_by_prompt(store, rid)
    records.insert(store, [c for p in prompts if len(have.get(p.id, ())) >= config.n
                           for c in pair_samples(p.id, have[p.id], run_id=rid)])
    complete = all(len(have.get(p.id, ())) >= config.n for p in prompts)
    status = "finished" if complete else ("cancelled" if cancelled else "incomplete")
    set_status(store, rid, status)
    return PairsResult(run=run, created=False, status=status, prompts=len(prompts),
                       comparisons=cmp_store.count_comparisons(store, rid), failed=failed)


def pairs_from_sl(store: Store, sl_run_id: str) -> int:
    """First answer (A) vs final revision (B) for every prompt of an SL run. Idempotent."""
    run = get_run(store, sl_run_id)
    if run is None or run.kind != "sl":
        raise KeyError(f"no SL run {sl_run_id!r}")
    firsts = first_answers_of(store, sl_run_id)
    comparisons = [sl_pair(f["prompt_id"], sl_run_id, firsts[f["prompt_id"]], f, firsts[f["prompt_id"]]["model"])
                   for f in cmp_store.final_revisions_of(store, sl_run_id) if f["prompt_id"] in firsts]
    records.insert(store, comparisons)
    return len(comparisons)
