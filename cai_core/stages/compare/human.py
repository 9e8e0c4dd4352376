"""Human-labelled evaluation: people's labels of a compare run's answers next to the classifier's
on the same answers, per model, with intervals and agreement (Cohen's kappa)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable, Mapping

from ...labels.agreement import cohen_kappa
from .report import response_rates, wilson_interval
from .response_class import RESPONSE_CLASSES, classify_response, response_class_of

__all__ = ["human_evaluation", "human_markdown"]


def human_evaluation(labelled: Iterable[Mapping[str, Any]], models: Iterable[str] = ()) -> dict[str, Any]:
    """``labelled``: rows {model_name, prompt, text, label} (the label a person gave, one of
    ``RESPONSE_CLASSES``). Per model (``models`` order first, then any others): the human rates,
    the classifier's rates on the very same answers, their agreement and kappa; plus overall
    agreement and a class-by-class confusion (rows: person, columns: classifier)."""
    rows = list(labelled)
    order = list(dict.fromkeys([*models, *sorted({r["model_name"] for r in rows})]))
    human: dict[str, list[str]] = {m: [] for m in order}
    machine: dict[str, list[str]] = {m: [] for m in order}
    for r in rows:
        human[r["model_name"]].append(r["label"])
        machine[r["model_name"]].append(response_class_of(classify_response(r["text"], r["prompt"])))
    confusion = {c: dict.fromkeys(RESPONSE_CLASSES, 0) for c in RESPONSE_CLASSES}
    for m in order:
        for h, c in zip(human[m], machine[m]):
            confusion[h][c] += 1
    per_model = []
    for m, hr, cr in zip(order, response_rates({m: human[m] for m in order}),
                         response_rates({m: machine[m] for m in order})):
        pairs = list(zip(human[m], machine[m]))
        per_model.append({"model": m, "n": len(pairs), "human": asdict(hr), "classifier": asdict(cr),
                          "agreement": sum(a == b for a, b in pairs) / len(pairs) if pairs else None,
                          "kappa": cohen_kappa(pairs)})
    all_pairs = [(h, c) for m in order for h, c in zip(human[m], machine[m])]
    return {"n": len(all_pairs), "models": per_model, "confusion": confusion,
            "agreement": sum(a == b for a, b in all_pairs) / len(all_pairs) if all_pairs else None,
            "kappa": cohen_kappa(all_pairs)}


def _cell(rates: Mapping[str, Any], k: str) -> str:
    n = rates["n"]
    if not n:
        return "—"
    lo, hi = wilson_interval(rates[k], n)
    return f"{rates[k] / n * 100:.0f} % [{lo * 100:.0f}–{hi * 100:.0f}]"


def human_markdown(ev: Mapping[str, Any]) -> str:
    """The human-labelled table: per model, people's rates (95 % Wilson interval) next to the
    classifier's on the same answers, then their agreement."""
    if not ev.get("n"):
        return "_No answer of this run has a human label yet: label some in the Audit tab (or `cai compare label`)._\n"
    lines = ["### Responses labelled by people (person / classifier on the same answers)", "",
             "| Model | Labelled | Comply | Objection | Evasive | Incoherent | Agreement | κ |",
             "|---|---:|---|---|---|---|---|---|"]
    for m in ev["models"]:
        h, c = m["human"], m["classifier"]
        cells = [f"{_cell(h, k)} / {_cell(c, k).split(' [')[0]}" for k in RESPONSE_CLASSES]
        agree = "—" if m["agreement"] is None else f"{m['agreement'] * 100:.0f} %"
        kappa = "—" if m["kappa"] is None else f"{m['kappa']:.2f}"
        lines.append(f"| {m['model']} | {m['n']} | " + " | ".join(cells) + f" | {agree} | {kappa} |")
    agree = "—" if ev["agreement"] is None else f"{ev['agreement'] * 100:.0f} %"
    kappa = "—" if ev["kappa"] is None else f"{ev['kappa']:.2f}"
    lines += ["", f"Person vs classifier over {ev['n']} answers: agreement {agree}, κ {kappa}."]
    return "\n".join(lines) + "\n"
