"""Records -> TRL-format datasets with a content hash (the snapshot a training run names)."""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .store import Store

__all__ = ["SFTSnapshot", "sft_records", "write_records", "sft_dataset"]


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
