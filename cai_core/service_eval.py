"""The facade's human-evaluation part (of :class:`~cai_core.services.Services`): people label a
compare run's answers comply / objection / evasive / incoherent, and the report shows their
rates next to the classifier's."""
from __future__ import annotations

from typing import Any

from .ids import stable_id
from .types import RESPONSE_CLASSES

__all__ = ["EvalLabelsMixin"]


class EvalLabelsMixin:
    """Human labels of evaluation answers; ``self`` is the Services facade."""

    def compare_runs(self: Any) -> list[dict]:
        """Compare runs, newest first, with answers and labelled counts."""
        from .store.response_labels import compare_runs_with_answers

        return compare_runs_with_answers(self.store)

    def _compare_run_id(self: Any, run_id: str | None) -> str:
        runs = self.compare_runs()
        if not runs:
            raise ValueError("no compare run yet: run `cai compare` (or the Compare tab) first")
        if run_id is None:
            return runs[0]["id"]
        if run_id not in {r["id"] for r in runs}:
            raise ValueError(f"{run_id!r} is not a compare run")
        return run_id

    def answers_to_label(self: Any, run_id: str | None = None, *, limit: int = 20) -> dict:
        """{run_id, answers: [{id, model_name, prompt, text}]}: unlabelled answers, models mixed."""
        from .store.response_labels import answers_to_label

        rid = self._compare_run_id(run_id)
        return {"run_id": rid, "answers": answers_to_label(self.store, rid, limit=limit)}

    def compare_answer_ids(self: Any, ids: set[str] | list[str]) -> set[str]:
        """Those of ``ids`` that are answers of a compare run (checked before labelling a batch)."""
        from .store.response_labels import compare_answer_ids

        return compare_answer_ids(self.store, sorted(ids))

    def label_answer(self: Any, generation_id: str, label: str, *, author: str, reason: str | None = None) -> dict:
        """Append a person's label of one compare answer (the newest label counts)."""
        from .store import records
        from .store.response_labels import labels_of_answer
        from .types import Generation, ResponseLabel

        if label not in RESPONSE_CLASSES:
            raise ValueError(f"label must be one of {', '.join(RESPONSE_CLASSES)}, not {label!r}")
        if not author.strip():
            raise ValueError("a label needs an author")
        if generation_id not in self.compare_answer_ids([generation_id]):
            raise ValueError(f"{generation_id!r} is not an answer of a compare run")
        gen = records.load_one(self.store, Generation, id=generation_id)
        n = labels_of_answer(self.store, generation_id)
        row = ResponseLabel(id=stable_id("response-label", generation_id, author, n), generation_id=generation_id,
                            run_id=gen.run_id, model_name=str(gen.params.get("model_name", gen.model)),
                            author=author.strip(), label=label, reason=reason or None)  # type: ignore[arg-type]
        records.insert(self.store, [row])
        return {"id": row.id, "generation_id": generation_id, "label": label, "model_name": row.model_name}

    def human_evaluation(self: Any, run_id: str | None = None) -> dict:
        """People's labels of a compare run's answers vs the classifier's: {run_id, ..., markdown}."""
        from .stages.compare.human import human_evaluation, human_markdown
        from .store.response_labels import current_labels

        rid = self._compare_run_id(run_id)
        rows = current_labels(self.store, rid)
        models = [r["model"] for r in (self.compare_runs_report(rid) or {}).get("response_rates", [])]
        ev = human_evaluation(rows, models)
        return {"run_id": rid, **ev, "markdown": human_markdown(ev)}

    def compare_runs_report(self: Any, run_id: str) -> dict | None:
        """The stored report (its dict) of a compare run, or None."""
        import json

        from .store.training import report

        row = report(self.store, run_id)
        return None if row is None else json.loads(row["report"])
