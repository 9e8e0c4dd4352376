"""Selections -> TRL-format datasets with a content hash (the snapshot a training run names).

A snapshot is made from an explicit selection, never from "everything in the store": SL run(s)
for SFT, judge run(s) for the reward model, a prompt split for RL. The selection and the
prompts in it are recorded with the snapshot; the same selection gives the same records and
so the same hash, which is what lets a rerun find the finished training run."""
from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..prompt_sets import text_key
from ..store import Store
from ..store import training as training_store
from ..store.comparisons import comparisons_judged_by
from ..store.sl import answers_of_runs, final_revisions
from ..types import PREFERENCE_SOURCES, Prompt
from .audits import effective_labels
from .rule import training_pair

__all__ = [
    "SFTSnapshot", "sft_records", "helpful_answers", "write_records", "sft_dataset",
    "PreferenceSnapshot", "preference_records", "prompt_records", "register_snapshot",
]


@dataclass(frozen=True, slots=True)
class SFTSnapshot:
    records: list[dict]
    """TRL conversational format: ``{"messages": [user prompt, assistant final revision]}``."""
    content_hash: str
    """Hash of the records; a training run records it."""
    selection: dict = field(default_factory=dict)
    """What was chosen to make it (``{"sl_runs": [...], "include_flagged": ...}``)."""
    flagged: int = 0
    """Final revisions left out because they were flagged (empty, repetition, echo...)."""
    flag_counts: dict = field(default_factory=dict)
    """flag -> how many of the left-out revisions carry it (e.g. no_acceptable_candidate)."""
    helpful: int = 0
    """Helpful samples mixed in (the model's own answers to benign prompts; see sft_records)."""
    helpful_left_out: dict = field(default_factory=dict)
    """Why the other answers of the helpful runs stayed out: flagged, a class other than comply
    (objection / evasive / incoherent), or over_ratio."""

    @property
    def prompt_keys(self) -> list[str]:
        return sorted({text_key(r["messages"][0]["content"]) for r in self.records})


def sft_records(store: Store, *, sl_runs: Sequence[str], include_flagged: bool = False,
                helpful_runs: Sequence[str] = (), helpful_ratio: float = 1.0) -> SFTSnapshot:
    """(prompt, final revision) pairs of the selected SL runs: for each prompt and run, the
    revision of the highest round. Flagged revisions are left out unless asked for.

    ``helpful_runs``: runs whose first answers (the model's own, to benign prompts) are mixed in
    as helpful samples, as the paper does so the model stays helpful: those the response
    classifier reads as helpful compliance and that carry no flag, at most ``helpful_ratio`` per
    harmless record, in a fixed order (by answer id hash) so the same selection gives the same
    records."""
    if helpful_ratio < 0:
        raise ValueError("helpful_ratio must be 0 or more")
    rows = final_revisions(store, list(sl_runs))
    kept = [r for r in rows if include_flagged or not r["flags"]]
    flag_counts: dict[str, int] = {}
    for r in rows:
        if not include_flagged:
            for f in r["flags"] or ():
                flag_counts[f] = flag_counts.get(f, 0) + 1
    records = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["revision"]}],
                "run_id": r["run_id"], "prompt_id": r["prompt_id"], "revision_id": r["revision_id"]} for r in kept]
    selection: dict = {"sl_runs": list(sl_runs), "include_flagged": include_flagged}
    helpful: list[dict] = []
    left_out: dict[str, int] = {}
    if helpful_runs:
        helpful, left_out = helpful_answers(store, helpful_runs, limit=math.floor(helpful_ratio * len(records)))
        selection.update(helpful_runs=list(helpful_runs), helpful_ratio=helpful_ratio)
    records += helpful
    body = json.dumps([rec["messages"] for rec in records], sort_keys=True, ensure_ascii=False)
    return SFTSnapshot(records, hashlib.sha256(body.encode()).hexdigest()[:16], selection, len(rows) - len(kept),
                       dict(sorted(flag_counts.items())), len(helpful), dict(sorted(left_out.items())))


def helpful_answers(store: Store, runs: Sequence[str], *, limit: int | None = None) -> tuple[list[dict], dict[str, int]]:
    """Helpful samples from the runs' first answers (unflagged, read as helpful compliance), at
    most ``limit``, in a fixed order (by answer id hash), and why the others were left out."""
    from ..ids import stable_id
    from ..stages.compare.response_class import classify_response, response_class_of

    from ..store.runs import run_kind

    for run in runs:
        if run_kind(store, run) != "sl":
            raise ValueError(f"{run}: not an SL run (helpful samples are SL runs' first answers: "
                             "`cai sl --prompts benign --rounds 0`)")
    good, left_out = [], {}
    for r in answers_of_runs(store, runs):
        why = "flagged" if r["flags"] else response_class_of(classify_response(r["answer"], r["prompt"]))
        if why != "comply":
            left_out[why] = left_out.get(why, 0) + 1
            continue
        good.append(r)
    good.sort(key=lambda r: stable_id("helpful", r["generation_id"]))
    if limit is not None and len(good) > limit:
        left_out["over_ratio"] = len(good) - limit
    return [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}],
             "run_id": r["run_id"], "prompt_id": r["prompt_id"], "generation_id": r["generation_id"],
             "source": "helpful"} for r in good[:limit]], left_out


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_records(records: list[dict], out: str | Path) -> Path:
    """Write as JSONL, Parquet or CSV, chosen by the file extension."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    tmp = out.with_name(out.name + ".tmp")
    if suffix in (".jsonl", ".json"):
        with tmp.open("w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    elif suffix == ".parquet":
        import datasets

        datasets.Dataset.from_list(records).to_parquet(str(tmp))
    elif suffix == ".csv":
        with tmp.open("w", encoding="utf-8", newline="") as f:
            flat = [{k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in r.items()} for r in records]
            writer = csv.DictWriter(f, fieldnames=list(flat[0]) if flat else ["messages"])
            writer.writeheader()
            for r in flat:
                writer.writerow({k: _csv_safe(v) if isinstance(v, str) else v for k, v in r.items()})
    else:
        raise ValueError(f"{out}: unknown export format {suffix!r} (use .jsonl, .parquet or .csv)")
    tmp.replace(out)  # atomic: a crash never leaves a half-written export under the real name
    return out


def sft_dataset(snapshot: SFTSnapshot):
    """The snapshot as a ``datasets.Dataset`` (what TRL's SFTTrainer takes)."""
    import datasets

    return datasets.Dataset.from_list(snapshot.records)


@dataclass(frozen=True, slots=True)
class PreferenceSnapshot:
    records: list[dict]
    """TRL preference format: prompt, chosen, rejected, plus p_chosen (soft label), margin,
    label_source (ai | human), comparison_id and source."""
    content_hash: str
    overrides: int
    """How many records carry a human decision (overrides and confirmations)."""
    skipped: int
    """Labelled comparisons left out: ties and unparsed."""
    dropped: int = 0
    """AI labels left out for being below ``min_confidence``."""
    selection: dict = field(default_factory=dict)
    """What was chosen to make it (``{"judge_runs": [...], "min_confidence": ...}``)."""

    @property
    def prompt_keys(self) -> list[str]:
        return sorted({text_key(r["prompt"]) for r in self.records})


def preference_records(store: Store, *, judge_runs: Sequence[str], min_confidence: float = 0.0) -> PreferenceSnapshot:
    """The comparisons the selected judge runs judged -> preference pairs. Labels aggregate within
    those runs only (several runs: an ensemble, as asked); a person's decision wins; the label
    rule decides and its P(A) becomes the soft label p_chosen. Comparisons made by ``compare``
    are evaluation data and never enter, whatever runs are named."""
    runs = list(judge_runs)
    comparisons = [c for c in comparisons_judged_by(store, runs) if c["source"] in PREFERENCE_SOURCES]
    labels = effective_labels(store, comparison_ids=[c["id"] for c in comparisons], runs=runs)
    records, skipped, dropped, overrides = [], 0, 0, 0
    for c in comparisons:
        lab = labels.get(c["id"])
        pair = training_pair(lab) if lab is not None else None
        if pair is None:
            skipped += lab is not None
            continue
        a_wins, p_chosen = pair
        if lab.source == "ai" and abs(p_chosen - 0.5) * 2 < min_confidence:  # type: ignore[union-attr]
            dropped += 1
            continue
        overrides += lab.source == "human"  # type: ignore[union-attr]
        records.append({
            "prompt": c["prompt"],
            "chosen": c["answer_a"] if a_wins else c["answer_b"],
            "rejected": c["answer_b"] if a_wins else c["answer_a"],
            "p_chosen": round(float(p_chosen), 6),
            "margin": round(float(2 * p_chosen - 1), 6),
            "label_source": lab.source,  # type: ignore[union-attr]
            "comparison_id": c["id"],
            "source": c["source"],
        })
    body = json.dumps([[x["prompt"], x["chosen"], x["rejected"], x["p_chosen"]] for x in records], ensure_ascii=False)
    return PreferenceSnapshot(records, hashlib.sha256(body.encode()).hexdigest()[:16], overrides, skipped, dropped,
                              {"judge_runs": runs, "min_confidence": min_confidence})


def prompt_records(prompts: Sequence[Prompt]) -> tuple[list[dict], str]:
    """RL's snapshot: the prompts themselves ({"prompt": text}) and their content hash."""
    records = [{"prompt": p.text} for p in prompts]
    return records, hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:16]


def register_snapshot(store: Store, *, kind: str, content_hash: str, path: str | Path, records: int,
                      overrides: int = 0, config: dict | None = None, prompt_keys: Sequence[str] = ()) -> None:
    """Record a written snapshot, its selection and its prompts, so training runs can name it and
    evaluation can tell which prompts it trained on (idempotent per hash)."""
    training_store.register_snapshot(store, kind=kind, content_hash=content_hash, path=str(path), records=records,
                                     overrides=overrides, config=config, prompt_keys=prompt_keys)
