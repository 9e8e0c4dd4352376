"""Records -> TRL-format datasets with a content hash (the snapshot a training run names)."""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..store import Store

__all__ = [
    "SFTSnapshot", "sft_records", "write_records", "sft_dataset",
    "PreferenceSnapshot", "preference_records", "register_snapshot",
]


@dataclass(frozen=True, slots=True)
class SFTSnapshot:
    records: list[dict]
    """TRL conversational format: ``{"messages": [user prompt, assistant final revision]}``."""
    content_hash: str
    """Hash of the records; a training run records it."""


def sft_records(store: Store, *, run_id: str | None = None, include_flagged: bool = False) -> SFTSnapshot:
    """(prompt, final revision) pairs: for each prompt and run, the revision of the highest
    round. Flagged revisions (empty, repetition, echo...) are left out unless asked for."""
    where, params = ("WHERE r.run_id = ?", [run_id]) if run_id else ("", [])
    rows = store.query(
        f"""
        SELECT p.text AS prompt, r.text AS revision, r.run_id, r.prompt_id, r.id AS revision_id,
               r.round, r.flags
        FROM revisions r JOIN prompts p ON p.id = r.prompt_id
        {where}
        QUALIFY row_number() OVER (PARTITION BY r.run_id, r.prompt_id ORDER BY r.round DESC) = 1
        ORDER BY r.run_id, p.position
        """,
        params,
    )
    records = [
        {
            "messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["revision"]}],
            "run_id": r["run_id"],
            "prompt_id": r["prompt_id"],
            "revision_id": r["revision_id"],
        }
        for r in rows
        if include_flagged or not r["flags"]
    ]
    body = json.dumps([rec["messages"] for rec in records], sort_keys=True, ensure_ascii=False)
    return SFTSnapshot(records, hashlib.sha256(body.encode()).hexdigest()[:16])


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
    label_source (ai | human) and comparison_id."""
    content_hash: str
    overrides: int
    """How many records carry a human decision (overrides and confirmations)."""
    skipped: int
    """Labelled comparisons left out (ties, unparsed, below min_confidence)."""


def preference_records(store: Store, *, judge_run_id: str | None = None, source: str | None = None,
                       min_confidence: float = 0.0) -> PreferenceSnapshot:
    """Effective labels -> preference pairs. A human decision wins over the AI's; for AI labels
    the mean P(answer_a better) decides and becomes the soft label p_chosen."""
    from .audits import effective_labels

    where, params = ("WHERE c.source = ?", [source]) if source else ("", [])
    rows = store.query(
        f"SELECT c.id, c.prompt_id, c.answer_a, c.answer_b, p.text AS prompt, p.position FROM comparisons c "
        f"JOIN prompts p ON p.id = c.prompt_id {where} ORDER BY p.position, c.id", params)
    labels = effective_labels(store, comparison_ids=[r["id"] for r in rows], judge_run_id=judge_run_id)
    records, skipped, overrides = [], 0, 0
    for r in rows:
        lab = labels.get(r["id"])
        if lab is None:
            continue
        p_a = lab.p_a
        if lab.source == "ai" and p_a is not None and p_a != 0.5:
            a_wins = p_a > 0.5
        elif lab.choice in ("A", "B"):
            a_wins = lab.choice == "A"
            p_a = p_a if p_a is not None and p_a != 0.5 else (1.0 if a_wins else 0.0)
        else:
            skipped += 1
            continue
        p_chosen = p_a if a_wins else 1.0 - p_a
        if lab.source == "ai" and abs(p_chosen - 0.5) * 2 < min_confidence:
            skipped += 1
            continue
        overrides += lab.source == "human"
        records.append({
            "prompt": r["prompt"],
            "chosen": r["answer_a"] if a_wins else r["answer_b"],
            "rejected": r["answer_b"] if a_wins else r["answer_a"],
            "p_chosen": round(float(p_chosen), 6),
            "margin": round(float(2 * p_chosen - 1), 6),
            "label_source": lab.source,
            "comparison_id": r["id"],
        })
    body = json.dumps([[x["prompt"], x["chosen"], x["rejected"], x["p_chosen"]] for x in records], ensure_ascii=False)
    return PreferenceSnapshot(records, hashlib.sha256(body.encode()).hexdigest()[:16], overrides, skipped)


def register_snapshot(store: Store, *, kind: str, content_hash: str, path: str | Path, records: int,
                      overrides: int = 0, config: dict | None = None) -> None:
    """Record a written snapshot so training runs can name it (idempotent per hash)."""
    store.insert("snapshots", [{"hash": content_hash, "kind": kind, "path": str(path), "records": records,
                                "overrides": overrides, "config": config or {}}])
