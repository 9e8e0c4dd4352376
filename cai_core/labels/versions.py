"""Constitution versions: save an edited constitution as a new version (older versions stay
in DuckDB, and every record keeps pointing at the version that produced it), diff two
versions, and a what-if that re-judges stored comparisons with a draft before it is saved.

What-if measures the *edit*, nothing else: for each changed principle it takes the judge run
that last judged that principle (its judge models, mode, orders, clamp and decoding) and a
sample of the comparisons it judged, then judges them twice with that same configuration:
once with the principle's text as that run saw it, once with the draft's text. A flip is a
label that differs between those two (the stored label is shown beside them). Its verdicts
are kept in ``what_if_verdicts`` (auditable, never labels).
"""
from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..backends.base import Backend, GenerationParams
from ..constitutions import parse_constitution
from ..stages.judge import judge
from ..store import Store
from ..store.comparisons import comparisons_of_ids
from ..store.constitutions import record_constitution, version_source, versions_of
from ..store.prompts import prompt_texts
from ..store.runs import find_or_create_run, get_run, set_status
from ..store.verdicts import judged_comparisons, latest_judged_run, verdicts_of
from ..store.whatif import store_what_if_verdicts, what_if_verdicts
from ..types import Comparison, Constitution, Principle, Run
from .rule import Choice, ai_label

__all__ = ["record_version", "save_version", "versions_of", "version_source", "diff_versions", "WhatIfRow",
           "WhatIfPlan", "plan_what_if", "what_if", "run_what_if", "what_if_rows"]


def record_version(store: Store, c: Constitution) -> None:
    record_constitution(store, c)


def save_version(store: Store, name: str, text: str, folder: str | Path) -> Constitution:
    """Validate ``text`` and make it the current version of ``name`` (file written atomically
    in ``folder``, which is searched before the shipped constitutions)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad constitution name {name!r}")
    c = parse_constitution(text, name=name, where=f"{name}.toml")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, folder / f"{name}.toml")
    record_version(store, c)
    return c


def diff_versions(old_text: str, new_text: str) -> str:
    """A unified line diff (plain text: the UI shows it in a code box, never as HTML)."""
    lines = difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), "old", "new", lineterm="", n=2)
    return "\n".join(lines) or "(no differences)"


@dataclass(frozen=True, slots=True)
class WhatIfRow:
    comparison_id: str
    prompt: str
    principle_id: str
    base_run: str
    """The judge run whose configuration both judgements used."""
    stored: Choice | None
    """The label that run's stored verdicts give under this principle."""
    stored_p_a: float | None
    old: Choice | None
    """Re-judged now with the principle's text as that run saw it."""
    old_p_a: float | None
    new: Choice | None
    """Re-judged now with the draft's text."""
    new_p_a: float | None

    @property
    def flipped(self) -> bool:
        """The label for this principle changes under the draft (same judge, same settings)."""
        return self.old != self.new


@dataclass(frozen=True, slots=True)
class WhatIfPlan:
    """One principle to re-judge: with which run's configuration, on which comparisons."""

    principle_id: str
    base_run: Run
    old: Principle
    new: Principle
    comparisons: tuple[Comparison, ...]


def _changed_principles(saved: Constitution | None, draft: Constitution) -> list[str]:
    if saved is None:
        return [p.id for p in draft.principles]
    old = {p.id: p.preference for p in saved.principles}
    return [p.id for p in draft.principles if old.get(p.id) != p.preference]


def plan_what_if(store: Store, draft: Constitution, *, saved: Constitution | None = None,
                 principle_ids: Sequence[str] | None = None, sample: int = 8) -> list[WhatIfPlan]:
    """For each changed (or named) principle that some judge run used: that run, the principle's
    old text (from the run's constitution version) and up to ``sample`` comparisons it judged."""
    plans = []
    for pid in (list(principle_ids) if principle_ids else _changed_principles(saved, draft)):
        new = draft.principle(pid)
        run_id = latest_judged_run(store, pid)
        run = get_run(store, run_id) if run_id else None
        if run is None:
            continue
        old_source = version_source(store, run.constitution_version) if run.constitution_version else None
        old_cons = parse_constitution(old_source, name=draft.name, where="stored version") if old_source else None
        try:
            old = old_cons.principle(pid) if old_cons else new
        except KeyError:
            old = new
        comps = comparisons_of_ids(store, judged_comparisons(store, run.id, pid, sample))
        if comps:
            plans.append(WhatIfPlan(pid, run, old, new, tuple(comps)))
    return plans


def _judge_twice(plan: WhatIfPlan, backend: Backend, prompts: Mapping[str, str], run_id: str,
                 draft: Constitution) -> list:
    cfg = plan.base_run.config
    kw = dict(mode=cfg.get("mode", "logprob"), orders=tuple(cfg.get("orders") or ("AB", "BA")),
              clamp=tuple(cfg.get("clamp") or (0.4, 0.6)),
              params=GenerationParams(**cfg["params"]) if cfg.get("params") else None)
    kw = {k: v for k, v in kw.items() if v is not None}
    comps = list(plan.comparisons)
    old = judge(comps, prompts, {c.id: [plan.old] for c in comps}, backend, constitution_version=plan.base_run.constitution_version or "",
                run_id=f"{run_id}#old", **kw)
    new = judge(comps, prompts, {c.id: [plan.new] for c in comps}, backend, constitution_version=draft.version,
                run_id=f"{run_id}#new", **kw)
    return old + new


def what_if(store: Store, plans: Sequence[WhatIfPlan], judges_for: Callable[[Run], Sequence[Backend]],
            draft: Constitution, run: Run, *, progress: Callable[[int, int, str], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[WhatIfRow]:
    """Judge every plan with its run's judges, old text and draft text, storing the verdicts
    as they come; then the rows. A rerun of the same what-if run re-judges nothing it has."""
    done_ids = {v.comparison_id + "\x1f" + v.principle_id for v in what_if_verdicts(store, run.id)}
    for i, plan in enumerate(plans):
        if should_stop and should_stop():
            break
        if progress:
            progress(i, len(plans), f"re-judging {plan.principle_id}")
        todo = WhatIfPlan(plan.principle_id, plan.base_run, plan.old, plan.new, tuple(
            c for c in plan.comparisons if c.id + "\x1f" + plan.principle_id not in done_ids))
        if not todo.comparisons:
            continue
        prompts = prompt_texts(store, sorted({c.prompt_id for c in todo.comparisons}))
        for backend in judges_for(plan.base_run):
            store_what_if_verdicts(store, _judge_twice(todo, backend, prompts, run.id, draft))
    if progress:
        progress(len(plans), len(plans), "done")
    return what_if_rows(store, run.id, plans)


def run_what_if(store: Store, draft: Constitution, plans: Sequence[WhatIfPlan],
                judges_for: Callable[[Run], Sequence[Backend]], *, sample: int,
                progress: Callable[[int, int, str], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> tuple[str, list[WhatIfRow]]:
    """The what-if run of these plans (found again for the same draft and sample, so a rerun
    re-judges nothing it has), judged -> (run id, rows)."""
    run, _ = find_or_create_run(store, kind="what-if", model=",".join(sorted({p.base_run.id for p in plans})), seed=0,
                                constitution_version=draft.version,
                                config={"draft": draft.version, "draft_source": draft.source,
                                        "principles": [p.principle_id for p in plans], "sample": sample,
                                        "base_runs": [p.base_run.id for p in plans]})
    rows = what_if(store, plans, judges_for, draft, run, progress=progress, should_stop=should_stop)
    set_status(store, run.id, "cancelled" if should_stop and should_stop() else "finished")
    return run.id, rows


def what_if_rows(store: Store, run_id: str, plans: Sequence[WhatIfPlan]) -> list[WhatIfRow]:
    """The rows of a what-if run: per planned comparison and principle, stored vs old vs new label."""
    fresh = what_if_verdicts(store, run_id)
    rows = []
    for plan in plans:
        ids = [c.id for c in plan.comparisons]
        prompts = prompt_texts(store, sorted({c.prompt_id for c in plan.comparisons}))
        stored = [v for v in verdicts_of(store, run_ids=[plan.base_run.id], comparison_ids=ids)
                  if v.principle_id == plan.principle_id]
        for c in plan.comparisons:
            s = ai_label(c.id, [v for v in stored if v.comparison_id == c.id])
            o = ai_label(c.id, [v for v in fresh if v.comparison_id == c.id and v.principle_id == plan.principle_id
                               and v.run_id == f"{run_id}#old"])
            n = ai_label(c.id, [v for v in fresh if v.comparison_id == c.id and v.principle_id == plan.principle_id
                               and v.run_id == f"{run_id}#new"])
            rows.append(WhatIfRow(c.id, prompts.get(c.prompt_id, ""), plan.principle_id, plan.base_run.id,
                                  s.choice, s.p_a, o.choice, o.p_a, n.choice, n.p_a))
    return rows
