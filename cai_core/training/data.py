"""What a training run trains on: an explicit selection turned into a snapshot file.

SFT trains on the final revisions of selected SL runs, the reward model on the labels of
selected judge runs, RL on one split of a prompt set. Each becomes a JSONL file named by its
content hash and registered with its selection and its prompts, so the run records exactly what
it learned from, the same selection gives the same file (and so the same run: nothing is
retrained), and evaluation can tell which prompts a model has seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..gold.trust import label_warnings
from ..labels.contrast import contrast_records
from ..labels.snapshots import preference_records, prompt_records, register_snapshot, sft_records, write_records
from ..prompt_sets import prompts_of, text_key
from ..store import Store
from ..types import PREFERENCE_KINDS, PromptSet, Split

__all__ = ["TrainingInputs", "sft_inputs", "preference_inputs", "contrast_inputs", "rl_inputs", "inputs_for"]


@dataclass(frozen=True, slots=True)
class TrainingInputs:
    snapshot_hash: str
    path: Path
    records: int
    selection: dict
    description: str
    """One line saying what was selected and what it made (printed by the CLI, shown in the app)."""
    overrides: int = 0
    warnings: tuple[str, ...] = ()
    """Why the data should not be trusted (reward: labels from judges no better than chance on
    gold pairs, that follow position, or that were never validated)."""


def _write(store: Store, kind: str, records: list[dict], content_hash: str, data_dir: Path, *, selection: dict,
           prompt_keys: Sequence[str], overrides: int = 0) -> Path:
    path = Path(data_dir) / f"{kind}-{content_hash}.jsonl"
    if not path.is_file():  # named by its content: an existing file holds these very records
        write_records(records, path)
    register_snapshot(store, kind=kind, content_hash=content_hash, path=path, records=len(records),
                      overrides=overrides, config=selection, prompt_keys=prompt_keys)
    return path


def sft_inputs(store: Store, data_dir: Path, sl_runs: Sequence[str], *, include_flagged: bool = False,
               helpful_runs: Sequence[str] = (), helpful_ratio: float = 1.0) -> TrainingInputs:
    snap = sft_records(store, sl_runs=sl_runs, include_flagged=include_flagged, helpful_runs=helpful_runs,
                       helpful_ratio=helpful_ratio)
    if not snap.records:
        raise ValueError(f"no SL revisions to train on in {', '.join(sl_runs)}: run `cai sl` first")
    path = _write(store, "sft", snap.records, snap.content_hash, data_dir, selection=snap.selection,
                  prompt_keys=snap.prompt_keys)
    why = ", ".join(f"{n} {f}" for f, n in snap.flag_counts.items())
    flagged = f", {snap.flagged} flagged left out ({why})" if snap.flagged else ""
    helpful = ""
    if helpful_runs:
        out = ", ".join(f"{n} {why}" for why, n in snap.helpful_left_out.items())
        helpful = (f"; {snap.helpful} helpful answers of run(s) {', '.join(helpful_runs)} mixed in (ratio "
                   f"{helpful_ratio:g}{'; left out: ' + out if out else ''})")
    return TrainingInputs(snap.content_hash, path, len(snap.records), snap.selection,
                          f"SFT data: final revisions of SL run(s) {', '.join(sl_runs)}: "
                          f"{len(snap.records) - snap.helpful} records{flagged}{helpful} (snapshot {snap.content_hash})")


def preference_inputs(store: Store, data_dir: Path, judge_runs: Sequence[str], *,
                      min_confidence: float = 0.0) -> TrainingInputs:
    snap = preference_records(store, judge_runs=judge_runs, min_confidence=min_confidence)
    if not snap.records:
        raise ValueError(f"no labelled comparisons to train on in judge run(s) {', '.join(judge_runs)}: "
                         "run `cai pairs` and `cai judge` first")
    path = _write(store, "preferences", snap.records, snap.content_hash, data_dir, selection=snap.selection,
                  prompt_keys=snap.prompt_keys, overrides=snap.overrides)
    dropped = f", {snap.dropped} below confidence {min_confidence} dropped" if snap.dropped else ""
    return TrainingInputs(snap.content_hash, path, len(snap.records), snap.selection,
                          f"preference data: labels of judge run(s) {', '.join(judge_runs)}: {len(snap.records)} pairs "
                          f"({snap.overrides} with a human decision, {snap.skipped} ties/unparsed skipped{dropped}; "
                          f"snapshot {snap.content_hash})", snap.overrides, tuple(label_warnings(store, judge_runs)))


_REJECTED = {"first": "first answers", "bare": "themselves without their reason"}


def contrast_inputs(store: Store, data_dir: Path, sl_runs: Sequence[str], *, helpful_runs: Sequence[str] = (),
                    refusal_runs: Sequence[str] = (), benign_ratio: float | None = None,
                    harmful_rejected: Sequence[str] = ("first",)) -> TrainingInputs:
    """Preference pairs by construction, no judge (see :mod:`cai_core.labels.contrast`)."""
    snap = contrast_records(store, sl_runs=sl_runs, helpful_runs=helpful_runs, refusal_runs=refusal_runs,
                            benign_ratio=benign_ratio, harmful_rejected=harmful_rejected)
    if not snap.records:
        raise ValueError(f"no contrast pairs in SL run(s) {', '.join(sl_runs)}: no acceptable revision differs "
                         "from its first answer" + (", and the refusal runs refused no benign prompt" if refusal_runs else ""))
    path = _write(store, "preferences", snap.records, snap.content_hash, data_dir, selection=snap.selection,
                  prompt_keys=snap.prompt_keys)
    out = ", ".join(f"{n} {why}" for why, n in snap.left_out.items())
    benign = (f" + {snap.benign} helpful answers of run(s) {', '.join(helpful_runs)} over the refusals of run(s) "
              f"{', '.join(refusal_runs)}" if refusal_runs else "")
    return TrainingInputs(snap.content_hash, path, len(snap.records), snap.selection,
                          f"preference data by construction (no judge): {snap.harmful} revisions over "
                          f"{' and '.join(_REJECTED[k] for k in snap.selection.get('harmful_rejected', ['first']))} of "
                          f"SL run(s) {', '.join(sl_runs)}{benign}{'; left out: ' + out if out else ''} "
                          f"(snapshot {snap.content_hash})")


def rl_inputs(store: Store, data_dir: Path, prompt_set: PromptSet, split: Split | None) -> TrainingInputs:
    prompts = prompts_of(store, prompt_set.id, split=split)
    if not prompts:
        raise ValueError(f"no prompts in {prompt_set.name} ({split or 'all'}) to train on")
    records, content_hash = prompt_records(prompts)
    selection = {"prompt_set": prompt_set.name, "split": split}
    path = _write(store, "prompts", records, content_hash, data_dir, selection=selection,
                  prompt_keys=[text_key(p.text) for p in prompts])
    return TrainingInputs(content_hash, path, len(records), selection,
                          f"RL prompts: {prompt_set.name}, {split or 'all'} split: {len(records)} prompts "
                          f"(snapshot {content_hash})")


def inputs_for(store: Store, kind: str, selection: dict | None, data_dir: Path) -> TrainingInputs:
    """The snapshot ``kind`` trains on, from ``selection`` (SFT: ``sl_runs``, ``include_flagged``,
    ``helpful_runs``, ``helpful_ratio``;
    reward, DPO: ``judge_runs``, ``min_confidence``, or by construction ``contrast`` with ``sl_runs``,
    ``helpful_runs``, ``refusal_runs``, ``benign_ratio``, ``harmful_rejected``; RL: ``prompt_set``, ``split``) or the defaults:
    the latest finished run of the right kind; red-team's train split."""
    from ..lineage import default_judge_runs, default_sl_runs
    from ..prompt_sets import get_prompt_set

    sel = dict(selection or {})
    if kind == "sft":
        return sft_inputs(store, data_dir, sel.get("sl_runs") or default_sl_runs(store),
                          include_flagged=bool(sel.get("include_flagged")), helpful_runs=sel.get("helpful_runs") or (),
                          helpful_ratio=float(sel.get("helpful_ratio", 1.0)))
    if kind in PREFERENCE_KINDS and sel.get("contrast"):
        return contrast_inputs(store, data_dir, sel.get("sl_runs") or default_sl_runs(store),
                               helpful_runs=sel.get("helpful_runs") or (), refusal_runs=sel.get("refusal_runs") or (),
                               benign_ratio=None if sel.get("benign_ratio") is None else float(sel["benign_ratio"]),
                               harmful_rejected=sel.get("harmful_rejected") or ("first",))
    if kind in PREFERENCE_KINDS:
        return preference_inputs(store, data_dir, sel.get("judge_runs") or default_judge_runs(store),
                                 min_confidence=float(sel.get("min_confidence") or 0.0))
    return rl_inputs(store, data_dir, get_prompt_set(store, sel.get("prompt_set") or "red-team"), sel.get("split", "train"))
