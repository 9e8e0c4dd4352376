"""Before/after evaluation: the same held-out prompts through several models (same decoding,
same seeds), every pair of models judged with the constitution in both orders, and a report
of win rates (Wilson 95 % intervals) and comply / objection / evasive rates per model."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from ..backends.base import Backend, GenerationParams, Request, chat
from ..ids import stable_id
from ..prompt_sets import prompts_of
from ..quality import output_flags
from ..store.runs import find_or_create_run, set_status
from ..stages.compare import EvalReport, build_report, classify_response, pair_schedule
from ..stages.pairs import comparison_id
from ..store import Store
from ..types import Comparison, Constitution, Generation, PromptSet, Run, as_row
from .judge import JudgeConfig, run_judge, start_judge_run

__all__ = ["CompareConfig", "run_compare"]


@dataclass(frozen=True, slots=True)
class CompareConfig:
    limit: int | None = None
    offset: int = 0
    """Skip the set's first prompts (hold out what the models were trained on)."""
    seed: int = 0
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_new_tokens=128, repetition_penalty=1.1))
    """Greedy by default, so every model is judged on its most likely answer."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    chunk: int = 16


def _answer_id(run_id: str, model_name: str, prompt_id: str) -> str:
    return stable_id("eval-answer", run_id, model_name, prompt_id)


def run_compare(
    store: Store, models: Mapping[str, Callable[[], Backend]], judge_backend: Backend, constitution: Constitution,
    prompt_set: PromptSet, config: CompareConfig, *, new_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Run, EvalReport]:
    """``models``: display name -> a function loading its backend (called only when answers
    are missing, so a resumed comparison loads nothing it does not need)."""
    names = list(models)
    if len(names) < 2:
        raise ValueError("compare needs at least two models")
    run, _ = find_or_create_run(
        store, kind="compare", model=",".join(names), seed=config.seed, new=new_run, prompt_set_id=prompt_set.id,
        constitution_version=constitution.version,
        config={"models": names, "prompt_set": prompt_set.id, "limit": config.limit, "offset": config.offset, "params": config.params.as_dict(),
                "judge": judge_backend.id, "mode": config.judge.mode, "principles": config.judge.principles},
    )
    set_status(store, run.id, "running")
    prompts = prompts_of(store, prompt_set.id, limit=config.limit, offset=config.offset)
    params = config.params if config.params.seed is not None else replace(config.params, seed=config.seed)
    answers: dict[str, dict[str, str]] = {}
    total, done = len(prompts) * len(names), 0
    for name in names:
        have = {r["prompt_id"]: r["text"] for r in store.query(
            "SELECT prompt_id, text FROM generations WHERE run_id = ? AND params->>'$.model_name' = ?", [run.id, name])}
        todo = [p for p in prompts if p.id not in have]
        done += len(prompts) - len(todo)
        backend = models[name]() if todo else None
        for i in range(0, len(todo), config.chunk):
            chunk = todo[i : i + config.chunk]
            outs = backend.generate([Request(chat(("user", p.text)), params) for p in chunk])  # type: ignore[union-attr]
            rows = []
            for p, o in zip(chunk, outs):
                if not o.ok:
                    continue
                text = o.text.strip()
                rows.append(as_row(Generation(
                    id=_answer_id(run.id, name, p.id), run_id=run.id, prompt_id=p.id, text=text,
                    finish_reason=o.finish_reason, flags=output_flags(text, finish_reason=o.finish_reason, echo_of=(p.text,)),
                    model=backend.id, params={**params.as_dict(), "model_name": name},  # type: ignore[union-attr]
                    prompt_tokens=o.prompt_tokens, completion_tokens=o.completion_tokens)))
                have[p.id] = text
            store.insert("generations", rows)
            done += len(chunk)
            if progress:
                progress(done, total, f"answers of {name}")
        answers[name] = have

    comparisons = []
    for a, b in pair_schedule(names):
        for p in prompts:
            if p.id in answers[a] and p.id in answers[b]:
                pa, pb = _answer_id(run.id, a, p.id), _answer_id(run.id, b, p.id)
                comparisons.append(Comparison(
                    id=comparison_id("compare", run.id, p.id, pa, pb), run_id=run.id, prompt_id=p.id, source="compare",
                    answer_a=answers[a][p.id], answer_b=answers[b][p.id], model_a=a, model_b=b, parent_a=pa, parent_b=pb))
    store.insert("comparisons", [as_row(c) for c in comparisons])

    jcfg = JudgeConfig(**{**{f: getattr(config.judge, f) for f in config.judge.__dataclass_fields__},
                          "source": "compare", "pairs_run": run.id, "limit": None})
    jrun, _ = start_judge_run(store, [judge_backend], constitution, jcfg)
    run_judge(store, [judge_backend], constitution, jrun, jcfg, progress=progress)

    from ..labels.audits import effective_labels

    labels = effective_labels(store, comparison_ids=[c.id for c in comparisons], judge_run_id=jrun.id)
    outcomes = []
    for c in comparisons:
        lab = labels.get(c.id)
        winner = None
        if lab is not None and lab.p_a is not None and lab.source == "ai" and lab.p_a != 0.5:
            winner = "A" if lab.p_a > 0.5 else "B"
        elif lab is not None:
            winner = lab.choice
        outcomes.append((c.model_a, c.model_b, winner))
    classes = {n: [classify_response(t) for t in answers[n].values()] for n in names}
    report = build_report(names, outcomes, classes, len(prompts))
    store.execute("DELETE FROM eval_reports WHERE run_id = ?", [run.id])
    store.insert("eval_reports", [{"run_id": run.id, "judge_run": jrun.id, "report": report.to_dict(),
                                   "markdown": report.to_markdown()}])
    set_status(store, run.id, "finished")
    return run, report
