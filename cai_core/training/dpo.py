"""Direct preference optimisation on the AI-labelled comparisons (TRL ``DPOTrainer``): the RL
phase without a reward model, as the Hugging Face Constitutional AI recipe runs it.

    python -m cai_core.training.dpo --config cfg.json [--beta 0.1 --max-steps 1]

Data: the same preference snapshot the reward model trains on (JSONL with `prompt`, `chosen`,
`rejected`; human decisions win), rendered through the policy's chat template as (user prompt,
assistant answer). The policy starts from `model` (the latest SFT checkpoint by default) and
the frozen reference is a copy of the same weights.

Labels are hard: `chosen` is the judge's (or a person's) pick, and `p_chosen` is not used --
TRL's sigmoid loss has no per-pair target. Weak AI labels are left out with the selection's
`min_confidence` instead (`cai train dpo --min-confidence 0.2`).
"""
from __future__ import annotations

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)

from dataclasses import dataclass, field
from pathlib import Path

from .common import Job, resolve_model_path, run_job, trainer_arguments
from .config import JobConfig, parse_config
from .reward import load_preference_dataset

__all__ = ["DPOJobConfig", "main"]

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")
"""TRL loss types offered here (sigmoid = the DPO paper's loss)."""


@dataclass(kw_only=True)
class DPOJobConfig(JobConfig):
    """Direct preference optimisation (TRL DPOTrainer) of a policy on a prompt/chosen/rejected JSONL."""

    data: str = field(metadata={"help": "JSONL with prompt, chosen, rejected (p_chosen is ignored)."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta: how far the policy may move from the reference."})
    loss_type: str = field(default="sigmoid", metadata={"help": f"TRL loss type, one of {', '.join(LOSS_TYPES)}."})
    label_smoothing: float = field(default=0.0, metadata={"help": "Share of labels assumed flipped (robust loss)."})
    max_length: int = field(default=512, metadata={"help": "Token limit of prompt + answer (longer ones are truncated)."})
    sft_weight: float = field(default=0.0, metadata={
        "help": "Weight of an SFT (NLL) loss on the chosen answers added to the DPO loss (RPO; TRL loss_type "
                "['sigmoid', 'sft']): keeps the chosen answers likely, where DPO alone lowers both sides. 0 = plain DPO."})

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0:
            raise ValueError("beta must be > 0")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, not {self.loss_type!r}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing must be in [0, 0.5)")
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")
        if self.sft_weight < 0:
            raise ValueError("sft_weight must be 0 or more")


CONFIG_CLASS = DPOJobConfig


def build(cfg: DPOJobConfig, checkpoint: Path | None) -> Job:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    model_path = resolve_model_path(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    f32 = dict(dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(model_path, **f32)
    ref_model = AutoModelForCausalLM.from_pretrained(model_path, **f32)  # frozen: the starting policy
    dataset = load_preference_dataset(cfg.data, soft_labels=False)
    losses = dict(loss_type=[cfg.loss_type, "sft"], loss_weights=[1.0, cfg.sft_weight]) if cfg.sft_weight > 0 \
        else dict(loss_type=[cfg.loss_type])
    args = DPOConfig(**trainer_arguments(cfg), beta=cfg.beta, **losses, label_smoothing=cfg.label_smoothing,
                     max_length=cfg.max_length)
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset,
                         processing_class=tokenizer)

    def save_final(dest: Path) -> None:
        trainer.save_model(str(dest))  # policy + tokenizer, a plain causal-LM folder

    # The complete checkpoint run_job found, not True (see sft.py).
    return Job(trainer=trainer, save_final=save_final, resume=str(checkpoint) if checkpoint else None)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DPOJobConfig, argv, prog="python -m cai_core.training.dpo")
    return run_job(cfg, "dpo", build)


if __name__ == "__main__":
    raise SystemExit(main())
