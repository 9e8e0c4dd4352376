"""The facade's judge-validation part (of :class:`~cai_core.services.Services`): gold sets,
validating judge configurations against them, and what a judge run's labels are worth."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .lineage import default_judge_runs
from .runners.sl import Progress

if TYPE_CHECKING:
    from .runners.validate import ValidateConfig

__all__ = ["GoldMixin"]


class GoldMixin:
    """Gold sets and judge validation; ``self`` is the Services facade."""

    def gold_sets(self: Any) -> list[dict]:
        from .gold.sets import list_gold_sets

        return list_gold_sets(self.store)

    def import_gold(self: Any, path: str | Path, *, name: str | None = None, tune_fraction: float | None = None,
                    seed: int = 0) -> dict:
        from .gold.sets import DEFAULT_TUNE_FRACTION, import_gold

        return import_gold(self.store, path, name=name, seed=seed,
                           tune_fraction=DEFAULT_TUNE_FRACTION if tune_fraction is None else tune_fraction)

    def validate_judge(self: Any, *, gold: str, config: "ValidateConfig", constitution: str = "harmless",
                       judges: list[str] | None = None, progress: Progress | None = None, should_stop=None) -> list:
        """Judge the gold set's pairs with every (judge, mode) of ``config``; each gets a recorded
        validation (``gold``: a file, a gold set's name, a shipped set, or ``audits``)."""
        from .gold.sets import resolve_gold
        from .runners.validate import run_validation

        cons = self.constitution(constitution)
        config = replace(config, gold=resolve_gold(self.store, gold))
        backends = [self.backend(j) for j in (judges or [self.settings.model])]
        return run_validation(self.store, backends, cons, config, progress=progress, should_stop=should_stop)

    def validations(self: Any, limit: int | None = 50) -> list[dict]:
        from .store.gold import validations

        return validations(self.store, limit=limit)

    def judge_trust(self: Any, run_id: str) -> list[dict]:
        """A judge run's judges, each with its latest validation (or None) and warnings."""
        from .gold.trust import judge_run_trust

        return judge_run_trust(self.store, run_id)

    def label_warnings(self: Any, judge_runs: list[str] | None = None) -> list[str]:
        """Warnings about the labels reward training would use (default: the latest judge run)."""
        from .gold.trust import label_warnings

        from .lineage import NoSelection

        try:
            runs = judge_runs or default_judge_runs(self.store)
        except NoSelection as e:
            return [str(e)]
        return label_warnings(self.store, runs)
