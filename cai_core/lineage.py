"""Lineage: what each training run learns from, and which prompts a model has seen.

* **Default selections.** A training run's input is an explicit selection; when the user names
  none, it is the latest finished run of the right kind: the latest SL run for SFT, the latest
  judge run over training pairs (never the evaluation pairs of ``compare``) for the reward
  model, the train split of a prompt set for RL.
* **Trained-on prompts.** A checkpoint trained on the prompts of its snapshot; it also carries
  what its ancestors trained on: the checkpoint it started from and, for RL, the reward model
  that scored it. Evaluation refuses prompts in that set (matched by normalised text, so the
  same prompt imported into another set is still recognised).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .prompt_sets import text_key
from .store import Store
from .store import training as training_store
from .store.runs import get_run, runs_of_kind
from .types import RL_KINDS, Checkpoint, Prompt

__all__ = ["MODEL_ALIASES", "checkpoint_named", "default_sl_runs", "default_judge_runs", "NoSelection", "ancestry",
           "Overlap", "training_overlap"]

MODEL_ALIASES: dict[str, tuple[str, ...]] = {"sft": ("sft",), "reward": ("reward",), "rl": RL_KINDS, "dpo": ("dpo",),
                                             **{k: (k,) for k in RL_KINDS}}
"""Model names that mean "the newest checkpoint of these kinds"."""


def checkpoint_named(store: Store, name: str) -> Checkpoint | None:
    """The checkpoint a model name means: a checkpoint or training run id, a checkpoint's folder,
    or an alias (``sft``, ``reward``, ``ppo``, ``rloo``, ``grpo``, ``rl``: the newest of that
    kind; KeyError when there is none yet). None for ``base`` or anything else."""
    if name in ("base", "embedded"):
        return None
    ckpt = training_store.checkpoint(store, name)
    if ckpt is None and name in MODEL_ALIASES:
        ckpt = training_store.latest_checkpoint(store, MODEL_ALIASES[name])
        if ckpt is None:
            raise KeyError(f"no {name} checkpoint yet (train one with `cai train {MODEL_ALIASES[name][0]}`)")
    return ckpt or training_store.checkpoint_by_path(store, name)


class NoSelection(ValueError):
    """There is nothing of the kind a training run needs (and the message says what to run)."""


def default_sl_runs(store: Store) -> list[str]:
    """The latest finished SL run with revisions (an answers-only run, ``rounds`` 0, has none)."""
    runs = [r for r in runs_of_kind(store, "sl", status="finished") if r.config.get("rounds", 1) != 0]
    if not runs:
        raise NoSelection("no finished SL run to train on: run `cai sl` first (or name runs with --sl-runs)")
    return [runs[0].id]


def default_judge_runs(store: Store) -> list[str]:
    """The latest finished judge run over training pairs (judge runs of ``compare`` excluded)."""
    runs = [r for r in runs_of_kind(store, "judge", status="finished") if r.config.get("source") != "compare"]
    if not runs:
        raise NoSelection("no finished judge run over training pairs: run `cai pairs` and `cai judge` first "
                          "(or name runs with --judge-runs)")
    return [runs[0].id]


def ancestry(store: Store, ckpt: Checkpoint) -> list[Checkpoint]:
    """The checkpoint and every checkpoint it descends from: the model it started from and, for
    RL, its reward model (each found by its folder), recursively; in discovery order."""
    out, seen, todo = [], set(), [ckpt]
    while todo:
        c = todo.pop(0)
        if c.id in seen:
            continue
        seen.add(c.id)
        out.append(c)
        run = get_run(store, c.run_id)
        parents = [c.base_model, (run.config.get("reward_model") if run else None) or c.config.get("reward_model")]
        for path in parents:
            parent = training_store.checkpoint_by_path(store, str(path)) if path else None
            if parent is not None:
                todo.append(parent)
    return out


@dataclass(frozen=True, slots=True)
class Overlap:
    """How many evaluation prompts a model (with its ancestors) trained on."""

    checkpoint: str | None
    """The model's checkpoint id (None: not a trained checkpoint, e.g. the base model)."""
    snapshots: tuple[str, ...]
    """Training snapshot hashes along its lineage."""
    trained: tuple[str, ...]
    """Ids of the evaluation prompts found in those snapshots."""

    @property
    def count(self) -> int:
        return len(self.trained)


def training_overlap(store: Store, ckpt: Checkpoint | None, prompts: Sequence[Prompt]) -> Overlap:
    """Which of ``prompts`` the checkpoint or any ancestor trained on."""
    if ckpt is None:
        return Overlap(None, (), ())
    snapshots = tuple(dict.fromkeys(c.snapshot_hash for c in ancestry(store, ckpt) if c.snapshot_hash))
    keys = {p.id: text_key(p.text) for p in prompts}
    seen = training_store.trained_on(store, snapshots, sorted(set(keys.values())))
    return Overlap(ckpt.id, snapshots, tuple(pid for pid, k in keys.items() if k in seen))
