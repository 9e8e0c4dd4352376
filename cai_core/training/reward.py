"""Preference (reward) model training on AI-labelled comparisons (the paper's RLAIF PM stage).

    python -m cai_core.training.reward --config cfg.json [--soft-labels ...]

Data: JSONL with `prompt`, `chosen`, `rejected` strings and an optional `p_chosen` in [0, 1],
the AI judge's probability that `chosen` is better. Each pair is rendered through the model's
chat template as (user prompt, assistant answer), exactly as GRPO/RLOO later feed the policy's
answers to the reward model.

Hard labels (default): TRL's RewardTrainer unchanged, loss = -log σ(r_c − r_r).
Soft labels (`--soft-labels`): the Constitutional AI paper trains the preference model on the
feedback model's normalised probabilities as soft targets:
    loss = -[p·log σ(r_c − r_r) + (1 − p)·log σ(r_r − r_c)]
which is the hard loss when p = 1. Rows without `p_chosen` count as p = 1.
"""
from __future__ import annotations

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)

from dataclasses import dataclass, field
from pathlib import Path

from .common import Job, read_jsonl, resolve_model_path, run_job, trainer_arguments
from .config import JobConfig, parse_config

__all__ = ["RewardJobConfig", "soft_preference_loss", "main"]


@dataclass(kw_only=True)
class RewardJobConfig(JobConfig):
    """Reward-model training (TRL RewardTrainer) on a prompt/chosen/rejected JSONL."""

    data: str = field(metadata={"help": "JSONL with prompt, chosen, rejected (+ optional p_chosen)."})
    max_length: int = field(default=512, metadata={"help": "Pairs longer than this (tokens) are dropped."})
    soft_labels: bool = field(default=True, metadata={"help": "Train on p_chosen as soft targets (the paper's soft labels; --no-soft-labels: hard chosen/rejected)."})

    def validate(self) -> None:
        super().validate()
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")


CONFIG_CLASS = RewardJobConfig


def soft_preference_loss(rewards_chosen, rewards_rejected, p_chosen):
    """Mean of -[p·log σ(r_c − r_r) + (1 − p)·log σ(r_r − r_c)] over the batch (tensors)."""
    import torch.nn.functional as F

    d = rewards_chosen - rewards_rejected
    return -(p_chosen * F.logsigmoid(d) + (1.0 - p_chosen) * F.logsigmoid(-d)).mean()


def _as_messages(value, role: str) -> list[dict]:
    # Strings become a single turn; an already-conversational value is kept as it is.
    if isinstance(value, list):
        return value
    return [{"role": role, "content": str(value)}]


def load_preference_dataset(path: str, soft_labels: bool):
    from datasets import Dataset

    rows, bad = [], 0
    for r in read_jsonl(path):
        if not all(k in r and r[k] is not None for k in ("prompt", "chosen", "rejected")):
            bad += 1
            continue
        row = {
            "prompt": _as_messages(r["prompt"], "user"),
            "chosen": _as_messages(r["chosen"], "assistant"),
            "rejected": _as_messages(r["rejected"], "assistant"),
        }
        if soft_labels:
            p = r.get("p_chosen")
            p = 1.0 if p is None else float(p)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{path}: p_chosen={p} outside [0, 1]")
            row["p_chosen"] = p
        rows.append(row)
    if bad:
        print(f"reward: skipped {bad} rows missing prompt/chosen/rejected")
    if not rows:
        raise ValueError(f"{path}: no usable preference rows")
    return Dataset.from_list(rows)


def _soft_trainer_classes():
    """RewardTrainer + collator that carry `p_chosen` through to the loss."""
    from dataclasses import dataclass as _dc

    import torch
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    @_dc
    class SoftPreferenceCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            out["p_chosen"] = torch.tensor([float(e["p_chosen"]) for e in examples], dtype=torch.float)
            return out

    class SoftLabelRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            # Keep p_chosen past `remove_unused_columns`.
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "p_chosen"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            p = inputs.pop("p_chosen", None)
            # TRL's own pass: the forward, the hard loss and its metrics (accuracy, margin, rewards)...
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if p is not None:
                # ...then the loss replaced by the soft-target one from the same forward.
                r_c, r_r = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
                loss = soft_preference_loss(r_c, r_r, p.to(r_c.dtype))
                if self.args.center_rewards_coefficient is not None:
                    loss = loss + self.args.center_rewards_coefficient * torch.mean((r_c + r_r) ** 2)
            return (loss, outputs) if return_outputs else loss

    return SoftLabelRewardTrainer, SoftPreferenceCollator


def build(cfg: RewardJobConfig, checkpoint: Path | None) -> Job:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    model_path = resolve_model_path(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:  # TRL's scoped silencing of "score.weight newly initialised / lm_head unexpected"
        from trl.trainer.reward_trainer import suppress_seqcls_warning
    except ImportError:  # pragma: no cover - a TRL without it just prints the warning
        from contextlib import nullcontext as suppress_seqcls_warning
    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id

    dataset = load_preference_dataset(cfg.data, cfg.soft_labels)
    args = RewardConfig(**trainer_arguments(cfg), max_length=cfg.max_length)
    if cfg.soft_labels:
        trainer_cls, collator_cls = _soft_trainer_classes()
        collator = collator_cls(pad_token_id=tokenizer.pad_token_id)
    else:
        trainer_cls, collator = RewardTrainer, None
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=collator)
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"every pair is longer than max_length={cfg.max_length} tokens")

    def save_final(dest: Path) -> None:
        trainer.save_model(str(dest))  # model (num_labels=1, pad_token_id set) + tokenizer

    # The complete checkpoint run_job found, not True: the Trainer's own search takes the
    # highest-numbered folder, even one a crash left half-written (no trainer_state.json).
    return Job(trainer=trainer, save_final=save_final, resume=str(checkpoint) if checkpoint else None)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(RewardJobConfig, argv, prog="python -m cai_core.training.reward")
    return run_job(cfg, "reward", build)


if __name__ == "__main__":
    raise SystemExit(main())
