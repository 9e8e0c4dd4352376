"""How far a judge run's labels can be trusted: each of its judge configurations (judge model,
mode, constitution version) with its latest validation on gold pairs, or "not validated"."""
from __future__ import annotations

from typing import Any, Sequence

from ..store import Store
from ..store.gold import latest_validation
from ..store.runs import get_run
from .metrics import judge_warnings

__all__ = ["judge_run_trust", "label_warnings"]


def judge_run_trust(store: Store, run_id: str) -> list[dict[str, Any]]:
    """One entry per judge of the run: {judge, mode, constitution_version, validation (or None), warnings}."""
    run = get_run(store, run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r}")
    judges = run.config.get("judges") or [run.model]
    mode = run.config.get("mode", "logprob")
    out = []
    for j in judges:
        val = latest_validation(store, judge=j, mode=mode, constitution_version=run.constitution_version)
        out.append({"judge": j, "mode": mode, "constitution_version": run.constitution_version, "validation": val,
                    "warnings": judge_warnings(val)})
    return out


def label_warnings(store: Store, judge_runs: Sequence[str]) -> list[str]:
    """Why the labels of these judge runs should not be trusted, one line per judge configuration."""
    lines = []
    for rid in judge_runs:
        for t in judge_run_trust(store, rid):
            lines += [f"labels of judge run {rid} ({t['judge']}, {t['mode']}): {w}" for w in t["warnings"]]
    return lines
