"""Supervised fine-tuning on the critique -> revision snapshot (the paper's SL-CAI stage).

    python -m cai_core.training.sft --config cfg.json [--max-steps 3 --lora ...]
    accelerate launch -m cai_core.training.sft --config cfg.json

Data: JSONL with a `messages` column in TRL's conversational format
([{"role": "user", ...}, {"role": "assistant", ...}]); other columns are ignored.

Loss on the answer only. TRL 1.12's `assistant_only_loss` needs a chat template with
`{% generation %}` markers; SmolLM2's has none and TRL cannot patch it
(`get_training_chat_template` raises "patching is not supported for this template"). So each
conversation becomes a conversational prompt/completion pair -- prompt = every message before
the last assistant turn, completion = that turn -- and `completion_only_loss` masks the prompt.
This works with any chat template (the app may train arbitrary local models), and TRL
tokenises prompt+completion with the template, so the completion keeps its end-of-turn token
(the model learns to stop). Earlier assistant turns of multi-turn rows are context, not targets;
the CAI snapshot has one answer per row.

`length_power` p sets how much a record weighs by its length: each record's mean loss on its
answer tokens, weighted by (answer tokens)^p. p = 1 is TRL's own average over all answer tokens
of a batch (the default), so a 384-token helpful answer outweighs a 30-token harmless revision
about thirteen to one; p = 0 weighs every record the same; 0.5 is between (about 3.6 to one).
"""
from __future__ import annotations

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)

from dataclasses import dataclass, field
from pathlib import Path

from .common import Job, read_jsonl, resolve_model_path, run_job, trainer_arguments
from .config import JobConfig, parse_config

__all__ = ["SFTJobConfig", "to_prompt_completion", "length_weighted_loss", "main"]


@dataclass(kw_only=True)
class SFTJobConfig(JobConfig):
    """Supervised fine-tuning (TRL SFTTrainer) on a messages JSONL."""

    data: str = field(metadata={"help": "JSONL with a `messages` column (conversational)."})
    max_length: int = field(default=512, metadata={"help": "Token limit per example (longer ones are truncated)."})
    lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter, merged into final/."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    length_power: float = field(
        default=1.0,
        metadata={"help": "A record's loss weighs (its answer tokens)^p: 1 = the average over all answer "
                          "tokens (long answers weigh more), 0 = every record the same."},
    )

    def validate(self) -> None:
        super().validate()
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")
        if self.lora and self.lora_r < 1:
            raise ValueError("lora_r must be >= 1")
        if not 0.0 <= self.length_power <= 1.0:
            raise ValueError("length_power must be between 0 and 1")


CONFIG_CLASS = SFTJobConfig


def to_prompt_completion(messages: list[dict]) -> dict | None:
    """messages -> {"prompt": [...], "completion": [last assistant message]}; None if unusable."""
    msgs = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages
            if isinstance(m, dict) and "role" in m]
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None or last == 0 or not msgs[last]["content"].strip():
        return None
    return {"prompt": msgs[:last], "completion": [msgs[last]]}


def load_sft_dataset(path: str):
    from datasets import Dataset

    rows, skipped = [], 0
    for r in read_jsonl(path):
        pc = to_prompt_completion(r.get("messages") or [])
        if pc is None:
            skipped += 1
        else:
            rows.append(pc)
    if skipped:
        print(f"sft: skipped {skipped} rows without a prompt and a non-empty assistant answer")
    if not rows:
        raise ValueError(f"{path}: no usable rows (need `messages` ending in an assistant turn)")
    return Dataset.from_list(rows)


def length_weighted_loss(power: float):
    """A Trainer ``compute_loss_func``: each record's mean next-token loss on its unmasked (answer)
    tokens, weighted by (answer tokens)^``power``, averaged over the micro-batch (``power`` 1: the
    token average; 0: every record the same). The caller sets ``loss_is_scaled_for_ga = False`` so
    the Trainer divides by the accumulation steps (``num_items_in_batch`` counts tokens)."""

    def loss(outputs, labels, num_items_in_batch=None):
        import torch.nn.functional as F

        logits = outputs.logits[..., :-1, :]
        targets = labels[..., 1:].to(logits.device)
        mask = targets != -100
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                              ignore_index=-100, reduction="none").view(targets.shape)
        tokens = mask.sum(dim=1)
        has = tokens > 0
        per_record = (nll * mask).sum(dim=1)[has] / tokens[has]
        weight = tokens[has].float() ** power
        return (per_record * weight).sum() / weight.sum().clamp(min=1e-8)

    return loss


def build(cfg: SFTJobConfig, checkpoint: Path | None) -> Job:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    model_path = resolve_model_path(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    dataset = load_sft_dataset(cfg.data)
    weighted = cfg.length_power != 1.0  # p = 1: TRL's own token average, its default (chunked) loss

    args = SFTConfig(
        **trainer_arguments(cfg),
        max_length=cfg.max_length,
        completion_only_loss=True,
        assistant_only_loss=False,
        packing=False,
        # the chunked loss TRL defaults to patches the forward to skip the logits a custom loss needs
        **({"loss_type": "nll"} if weighted else {}),
    )
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.05,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config,
                         compute_loss_func=length_weighted_loss(cfg.length_power) if weighted else None)
    if weighted:
        trainer.loss_is_scaled_for_ga = False  # a mean per micro-batch: the Trainer divides by the accumulation

    def save_final(dest: Path) -> None:
        if cfg.lora:
            # A plain model folder: merge the adapter into the base weights (main process only;
            # the adapter is replicated, not sharded, under DDP).
            trainer.accelerator.wait_for_everyone()
            if trainer.is_world_process_zero():
                merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
                merged.save_pretrained(dest)
                tokenizer.save_pretrained(dest)
        else:
            trainer.save_model(str(dest))  # handles DDP / FSDP / DeepSpeed gathering; saves the tokenizer

    # The complete checkpoint run_job found, not True: the Trainer's own search takes the
    # highest-numbered folder, even one a crash left half-written (no trainer_state.json).
    return Job(trainer=trainer, save_final=save_final, resume=str(checkpoint) if checkpoint else None)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(SFTJobConfig, argv, prog="python -m cai_core.training.sft")
    return run_job(cfg, "sft", build)


if __name__ == "__main__":
    raise SystemExit(main())
