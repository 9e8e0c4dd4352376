"""The response classifier measured on labelled answers (``response_sets/*.jsonl``).

``tune.jsonl`` and the unit tests' cases are what the marker lists were tuned on;
``test.jsonl`` is held apart (written from the class definitions, not from the markers) and is
what the classifier's reported accuracy comes from (``cai classify --corpus test``).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .report import wilson_interval
from .response_class import RESPONSE_CLASSES, RESPONSE_KINDS, classify_response, response_class_of

__all__ = ["CORPUS_DIR", "corpus_path", "load_corpus", "ClassifierScore", "score_classifier"]

CORPUS_DIR = Path(__file__).resolve().parents[3] / "response_sets"


def corpus_path(name: str) -> Path:
    """``tune`` / ``test`` (the shipped files) or a path to a JSONL file of the same shape."""
    p = CORPUS_DIR / f"{name}.jsonl"
    return p if p.is_file() else Path(name)


def load_corpus(name_or_path: str) -> list[dict]:
    """Rows ``{id, prompt, kind, answer, label}``; a label outside ``RESPONSE_KINDS`` or a row
    without prompt/answer raises ValueError naming the line."""
    path = corpus_path(name_or_path)
    if not path.is_file():
        raise ValueError(f"no response corpus {name_or_path!r}: expected tune, test or a JSONL file")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in RESPONSE_KINDS or "answer" not in row or not row.get("prompt"):
            raise ValueError(f"{path}:{i}: needs prompt, answer and a label in {RESPONSE_KINDS}")
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class ClassifierScore:
    n: int
    class_accuracy: float
    """Share of rows whose predicted class (comply / objection / evasive / incoherent) is right."""
    class_ci: tuple[float, float]
    kind_accuracy: float
    """Share whose fine kind (refusal, deflection, disclaimed, ...) is right."""
    per_kind: dict = field(default_factory=dict)
    """gold kind -> {n, correct_kind, correct_class}."""
    confusion: dict = field(default_factory=dict)
    """gold class -> predicted class -> count."""
    errors: list = field(default_factory=list)
    """Rows the classifier put in the wrong class: {id, label, predicted, answer}."""

    def to_dict(self) -> dict:
        return {"n": self.n, "class_accuracy": self.class_accuracy, "class_ci": list(self.class_ci),
                "kind_accuracy": self.kind_accuracy, "per_kind": self.per_kind, "confusion": self.confusion,
                "errors": self.errors}


def score_classifier(rows: list[dict]) -> ClassifierScore:
    """Run ``classify_response(answer, prompt)`` over labelled rows and count what it got right."""
    per_kind: dict[str, Counter] = {k: Counter() for k in RESPONSE_KINDS}
    confusion = {c: dict.fromkeys(RESPONSE_CLASSES, 0) for c in RESPONSE_CLASSES}
    right_class = right_kind = 0
    errors = []
    for r in rows:
        pred = classify_response(r["answer"], r["prompt"])
        gold_c, pred_c = response_class_of(r["label"]), response_class_of(pred)
        confusion[gold_c][pred_c] += 1
        per_kind[r["label"]].update(n=1, correct_kind=pred == r["label"], correct_class=gold_c == pred_c)
        right_class += gold_c == pred_c
        right_kind += pred == r["label"]
        if gold_c != pred_c:
            errors.append({"id": r.get("id"), "label": r["label"], "predicted": pred, "answer": r["answer"]})
    n = len(rows)
    return ClassifierScore(n, right_class / n if n else 0.0, wilson_interval(right_class, n), right_kind / n if n else 0.0,
                           {k: dict(c) for k, c in per_kind.items() if c["n"]}, confusion, errors)
