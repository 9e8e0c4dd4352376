"""The Hugging Face Constitutional AI dataset shape (HuggingFaceH4/cai-conversation-harmless)
made from an explicit selection: splits ``train_sft``, ``train_prefs``, ``test_sft``,
``test_prefs``, every split with the same ten columns.

* ``*_sft``: one row per record of the SFT snapshot of the selected SL runs (the final revisions,
  flagged ones left out unless asked, plus any helpful samples): the first answer, the
  critique and revision requests and texts of the final round; ``messages`` = ``chosen`` =
  [prompt, final revision], ``rejected`` = [prompt, first answer]. A helpful sample has no
  critique: its answer is both ``init_response`` and ``revision_response``.
* ``*_prefs``: one row per pair of the preference snapshot of the selected judge runs (the one
  label rule; a person's decision wins): ``chosen`` / ``rejected`` as [prompt, answer],
  ``messages`` = ``chosen``, ``init_prompt`` = ``prompt``; the other SL columns hold the SL record
  when the pair was made from one (``cai pairs --from-sl``), else empty strings.
* ``train_*`` / ``test_*``: by the recorded split of each row's prompt in its prompt set (the
  seeded-hash train / held-out split every set gets on first use): held-out prompts go to
  ``test_*``, the rest to ``train_*``.

Rows keep the snapshots' order (run, then prompt position; preference pairs by prompt position,
then id), so the same selection gives the same files. ``selection.json`` next to the data (and
each split's ``info.description``) records the selection, the snapshot hashes, the content hash
and each row's source record id.
"""
from __future__ import annotations

from . import env  # noqa: F401  (offline settings before datasets is imported)

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from ..labels.snapshots import PreferenceSnapshot, SFTSnapshot, preference_records, sft_records
from ..prompt_sets import ensure_split, text_key
from ..store import Store
from ..store.cai_dataset import comparison_origins, prompt_splits, sl_chains, trained_text_keys
from ..store.runs import run_kind

__all__ = ["SPLITS", "COLUMNS", "SL_COLUMNS", "TRL_COLUMNS", "SELECTION_FILE", "CaiDataset", "build_cai_dataset",
           "features", "to_dataset_dict", "check_target", "write_cai_dataset", "trl_view"]

SPLITS = ("train_sft", "train_prefs", "test_sft", "test_prefs")
SL_COLUMNS = ("init_prompt", "init_response", "critic_prompt", "critic_response", "revision_prompt",
              "revision_response")
COLUMNS = (*SL_COLUMNS, "prompt", "messages", "chosen", "rejected")
SELECTION_FILE = "selection.json"
SHAPE = "HuggingFaceH4/cai-conversation-harmless"
SPLIT_RULE = ("each row's prompt by its recorded split in its prompt set (seeded hash of the normalised text): "
              "held-out -> test_*, train -> train_*")
TRL_COLUMNS: dict[str, tuple[str, ...]] = {"sft": ("messages",), "prefs": ("chosen", "rejected")}
"""The columns TRL's trainers read. TRL picks the dataset type from the column names, and this
shape's string ``prompt`` beside conversational ``messages`` / ``chosen`` reads as a broken
prompt-completion (SFT) or explicit-prompt (reward, DPO) dataset; without it the prompt is the
implicit first turn of the conversations."""

Format = Literal["arrow", "parquet"]


@dataclass(frozen=True, slots=True)
class CaiDataset:
    splits: dict[str, list[dict]]
    """split -> rows (each with exactly :data:`COLUMNS`)."""
    row_ids: dict[str, list[str]]
    """split -> each row's source record: revision (or helpful generation) id, comparison id."""
    selection: dict
    """The SL runs, judge runs and options the rows were made from."""
    content_hash: str
    """Hash of every split's rows: the same selection over the same records gives the same hash."""
    sft: SFTSnapshot
    prefs: PreferenceSnapshot
    test_trained_on: int = 0
    """Test-split prompts that a registered training snapshot holds (some model of this store
    trained on them: e.g. SFT on an SL run over every split); evaluating that model on them is
    not held out."""

    @property
    def counts(self) -> dict[str, int]:
        return {s: len(self.splits[s]) for s in SPLITS}

    def record(self, fmt: Format = "arrow") -> dict:
        """What ``selection.json`` holds: how to make these files again, and where each row came from."""
        return {
            "shape": SHAPE, "format": fmt, "content_hash": self.content_hash, "selection": self.selection,
            "snapshots": {"sft": self.sft.content_hash, "preferences": self.prefs.content_hash},
            "split_rule": SPLIT_RULE, "counts": self.counts,
            "left_out": {"flagged_revisions": self.sft.flagged, "ties_or_unparsed": self.prefs.skipped,
                         "below_min_confidence": self.prefs.dropped},
            "human_decisions": self.prefs.overrides, "helpful_samples": self.sft.helpful,
            "test_prompts_in_training_snapshots": self.test_trained_on, "rows": self.row_ids,
        }


def _check_runs(store: Store, runs: Sequence[str], kind: str, option: str) -> list[str]:
    runs = list(runs)
    if not runs:
        raise ValueError(f"no {kind} runs selected (name them with {option})")
    for run in runs:
        found = run_kind(store, run)
        if found != kind:
            raise ValueError(f"{run}: {'no such run' if found is None else f'a {found} run, not a {kind} run'} "
                             f"({option} takes {kind} runs; see `cai runs`)")
    return runs


def _messages(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _sft_row(rec: dict, chain: dict | None) -> dict:
    prompt, answer = rec["messages"][0]["content"], rec["messages"][1]["content"]
    sl = dict(chain) if chain else {"init_response": answer, "critic_prompt": "", "critic_response": "",
                                     "revision_prompt": "", "revision_response": answer}
    sl = {k: v or "" for k, v in sl.items()}
    sl["revision_response"] = answer  # the snapshot's text is what trains
    messages = _messages(prompt, answer)
    return {"init_prompt": prompt, **sl, "prompt": prompt, "messages": messages, "chosen": messages,
            "rejected": _messages(prompt, sl["init_response"])}


def _pref_row(rec: dict, chain: dict | None) -> dict:
    prompt = rec["prompt"]
    sl = {k: (chain or {}).get(k) or "" for k in SL_COLUMNS[1:]}
    chosen = _messages(prompt, rec["chosen"])
    return {"init_prompt": prompt, **sl, "prompt": prompt, "messages": chosen, "chosen": chosen,
            "rejected": _messages(prompt, rec["rejected"])}


def _held_out(store: Store, prompt_ids: Sequence[str]) -> set[str]:
    """The prompts (of ``prompt_ids``) in their set's held-out split; sets never split get their
    split now, by the same rule SL and compare use."""
    splits = prompt_splits(store, sorted(set(prompt_ids)))
    unsplit = sorted({r["set_id"] for r in splits.values() if r["split"] is None})
    if unsplit:
        for set_id in unsplit:
            ensure_split(store, set_id)
        splits = prompt_splits(store, sorted(set(prompt_ids)))
    return {pid for pid, r in splits.items() if r["split"] == "held-out"}


def _content_hash(splits: dict[str, list[dict]]) -> str:
    body = json.dumps({s: splits[s] for s in SPLITS}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def build_cai_dataset(store: Store, *, sl_runs: Sequence[str], judge_runs: Sequence[str], include_flagged: bool = False,
                      helpful_runs: Sequence[str] = (), helpful_ratio: float = 1.0,
                      min_confidence: float = 0.0) -> CaiDataset:
    """The four splits from the SFT snapshot of ``sl_runs`` and the preference snapshot of
    ``judge_runs`` (both explicit: the caller resolves defaults)."""
    sl_runs = _check_runs(store, sl_runs, "sl", "--sl-runs")
    judge_runs = _check_runs(store, judge_runs, "judge", "--judge-runs")
    sft = sft_records(store, sl_runs=sl_runs, include_flagged=include_flagged, helpful_runs=helpful_runs,
                      helpful_ratio=helpful_ratio)
    if not sft.records:
        raise ValueError(f"no SL revisions in run(s) {', '.join(sl_runs)}"
                         + ("" if include_flagged else f" ({sft.flagged} flagged left out)") + ": nothing to export")
    prefs = preference_records(store, judge_runs=judge_runs, min_confidence=min_confidence)
    if not prefs.records:
        raise ValueError(f"no labelled preference pairs in judge run(s) {', '.join(judge_runs)} ({prefs.skipped} "
                         f"ties/unparsed, {prefs.dropped} below the confidence threshold): nothing to export")
    origins = comparison_origins(store, [r["comparison_id"] for r in prefs.records])
    chains = sl_chains(store, sorted({r["revision_id"] for r in sft.records if r.get("revision_id")}
                                     | {o["revision_id"] for o in origins.values() if o["revision_id"]}))
    held = _held_out(store, [r["prompt_id"] for r in sft.records] + [o["prompt_id"] for o in origins.values()])
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    for rec in sft.records:
        split = "test_sft" if rec["prompt_id"] in held else "train_sft"
        splits[split].append(_sft_row(rec, chains.get(rec.get("revision_id") or "")))
        ids[split].append(rec.get("revision_id") or rec["generation_id"])
    for rec in prefs.records:
        origin = origins[rec["comparison_id"]]
        split = "test_prefs" if origin["prompt_id"] in held else "train_prefs"
        splits[split].append(_pref_row(rec, chains.get(origin["revision_id"] or "")))
        ids[split].append(rec["comparison_id"])
    selection = {**sft.selection, "judge_runs": list(judge_runs), "min_confidence": min_confidence}
    test_keys = {text_key(r["prompt"]) for split in ("test_sft", "test_prefs") for r in splits[split]}
    trained = trained_text_keys(store, sorted(test_keys))
    return CaiDataset(splits, ids, selection, _content_hash(splits), sft, prefs, len(trained))


def features():
    """The ``datasets.Features`` every split has: six SL strings, ``prompt``, three conversations."""
    import datasets

    text = datasets.Value("string")
    conversation = datasets.List({"role": text, "content": text})
    return datasets.Features({c: conversation if c in ("messages", "chosen", "rejected") else text for c in COLUMNS})


def to_dataset_dict(cai: CaiDataset, fmt: Format = "arrow"):
    """The splits as a ``datasets.DatasetDict``; each split's ``info.description`` is the selection."""
    import datasets

    record = cai.record(fmt)
    description = json.dumps({k: v for k, v in record.items() if k != "rows"}, sort_keys=True, ensure_ascii=False)
    feats = features()
    return datasets.DatasetDict({
        s: datasets.Dataset.from_dict({c: [row[c] for row in cai.splits[s]] for c in COLUMNS}, features=feats,
                                      info=datasets.DatasetInfo(description=description, features=feats), split=s)
        for s in SPLITS})


def check_target(out: str | Path, overwrite: bool = False, fmt: str = "arrow") -> None:
    """Refuse a bad ``--out`` before any work: a file, a non-empty folder (unless ``overwrite``
    and it holds an earlier export), an unknown format."""
    if fmt not in ("arrow", "parquet"):
        raise ValueError(f"unknown format {fmt!r} (arrow or parquet)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file; --out takes a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out}: directory exists and is not empty "
                             "(pass --overwrite to replace an earlier export)")
        if not (out / SELECTION_FILE).is_file():  # never delete a folder this command did not write
            raise ValueError(f"{out}: not an earlier cai-dataset export (no {SELECTION_FILE}); refusing to replace it")


@contextlib.contextmanager
def _quiet_datasets():
    """No progress bars on stderr for a few hundred rows (the CLI prints its own summary)."""
    import datasets

    was_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


def write_cai_dataset(cai: CaiDataset, out: str | Path, *, fmt: Format = "arrow", overwrite: bool = False) -> Path:
    """Write ``out/`` (``save_to_disk``, or ``out/<split>.parquet`` with ``fmt="parquet"``) and
    ``out/selection.json``. Written into a sibling folder first and moved into place, so a crash
    never leaves a half-written export under the real name."""
    check_target(out, overwrite, fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier attempt of this process id
    tmp.mkdir()
    try:
        with _quiet_datasets():
            dd = to_dataset_dict(cai, fmt)
            if fmt == "arrow":  # an empty split gets one empty shard: by default it gets none and cannot load
                dd.save_to_disk(str(tmp), num_shards={x: 1 for x in SPLITS if not cai.splits[x]})
            else:
                for s in SPLITS:
                    dd[s].to_parquet(str(tmp / f"{s}.parquet"))
        (tmp / SELECTION_FILE).write_text(json.dumps(cai.record(fmt), indent=1, sort_keys=True, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def trl_view(split: Any, kind: Literal["sft", "prefs"]):
    """A split with only the columns TRL's trainers read (:data:`TRL_COLUMNS`): ``messages`` for
    SFTTrainer (``kind="sft"``), ``chosen`` / ``rejected`` for RewardTrainer and DPOTrainer
    (``kind="prefs"``)."""
    if kind not in TRL_COLUMNS:
        raise ValueError(f"unknown kind {kind!r} (sft or prefs)")
    return split.select_columns(list(TRL_COLUMNS[kind]))
