"""RL against the preference model (the paper's RL-CAI stage): PPO, RLOO or GRPO.

    python -m cai_core.training.rl --config cfg.json --algorithm grpo

Prompts: JSONL with a `prompt` column (a string, or a list of chat messages). The policy starts
from `model` (usually the SFT run's final/), the reward model is reward.py's final/.

- RLOO / GRPO: TRL's `RLOOTrainer` / `GRPOTrainer` with `reward_funcs=<reward model folder>`
  and conversational prompts; TRL renders prompt + answer through the reward model's chat
  template, as reward.py trained it. `per_device_batch_size` counts completions: a multiple of
  `num_generations`. `kl_coef` is their `beta` (0 = no reference model loaded, no `kl` logged).
- PPO: `trl.experimental.ppo.PPOTrainer` (TRL 1.12 is the last release with it) with policy,
  reference policy, reward model and a value model initialised from the reward model. One
  "step" is one PPO iteration: per_device_batch_size × gradient_accumulation_steps rollouts,
  then `num_ppo_epochs` passes of minibatch updates.

PPO quirks in TRL 1.12 that this file works around (see the source of `PPOTrainer.train`):
  * padding is inferred as `token == pad_token_id`. SmolLM2's pad token is its end-of-turn
    token `<|im_end|>`, which occurs inside every chat-templated prompt, so those tokens would
    be masked out of the prompt. PPO therefore pads with a special token that is neither
    EOS/BOS nor present in any prompt (`<|endoftext|>` for SmolLM2; a new `<|pad|>` token is
    added as a last resort). final/ is saved with the tokenizer's original pad token.
  * its loop ignores `control.should_training_stop`; cancellation raises after the checkpoint
    callback instead.
  * `train()` has no `resume_from_checkpoint`. A PPO rerun after a cancel restarts from the
    policy weights of the latest `checkpoint-N` and runs the remaining max_steps − N
    iterations, numbering steps from N + 1; the reference policy is still `model`, but the
    optimizer, LR schedule and value model start afresh (the value head is not checkpointed).
    status.json says so in its `resume` field.
  * PPO scores the reply truncated just after the end-of-turn token; reward.py/GRPO score the
    full template (which adds a newline after it): a one-token difference.
"""
from __future__ import annotations

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)

import os
from dataclasses import dataclass, field
from pathlib import Path

from .common import (
    Job,
    checkpoint_step,
    read_jsonl,
    resolve_model_path,
    run_job,
    trainer_arguments,
    world_size,
)
from .config import JobConfig, parse_config
from ..types import RLKind

__all__ = ["RLJobConfig", "vllm_arguments", "main"]


@dataclass(kw_only=True)
class RLJobConfig(JobConfig):
    """RL fine-tuning of a policy against a reward model: PPO, RLOO or GRPO (TRL)."""

    algorithm: RLKind = field(default="ppo", metadata={"help": "RL algorithm."})
    reward_model: str = field(metadata={"help": "Reward model folder (reward.py's final/)."})
    prompts: str = field(metadata={"help": "JSONL with a `prompt` column."})
    response_length: int = field(default=32, metadata={"help": "Max new tokens per sampled response."})
    num_generations: int = field(default=4, metadata={"help": "Samples per prompt (RLOO/GRPO)."})
    kl_coef: float = field(default=0.05, metadata={"help": "KL penalty to the reference policy (PPO kl_coef, RLOO/GRPO beta)."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature."})
    missing_eos_penalty: float = field(default=1.0, metadata={"help": "PPO: score penalty for replies without EOS."})
    num_ppo_epochs: int = field(default=4, metadata={"help": "PPO: optimisation passes over each rollout batch."})
    max_prompt_length: int = field(default=256, metadata={"help": "Prompts longer than this (tokens, templated) are dropped."})
    use_vllm: bool = field(default=False, metadata={"help": "RLOO/GRPO: generate with vLLM (GPU machines with vllm installed)."})
    vllm_mode: str = field(default="server", metadata={"help": "RLOO/GRPO with vLLM: 'server' (a `trl vllm-serve` process) or 'colocate'."})
    vllm_server_base_url: str | None = field(default=None, metadata={"help": "RLOO/GRPO, vLLM server mode: its URL (default http://localhost:8000)."})
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "RLOO/GRPO, vLLM colocate mode: tensor-parallel GPUs."})

    def validate(self) -> None:
        super().validate()
        if self.response_length < 1 or self.max_prompt_length < 1:
            raise ValueError("response_length and max_prompt_length must be >= 1")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.algorithm in ("rloo", "grpo"):
            if self.num_generations < 2:
                raise ValueError(f"{self.algorithm} needs num_generations >= 2")
            if (self.per_device_batch_size * self.gradient_accumulation_steps) % self.num_generations:
                raise ValueError(
                    f"{self.algorithm}: per_device_batch_size × gradient_accumulation_steps "
                    f"({self.per_device_batch_size} × {self.gradient_accumulation_steps}) must be a multiple of "
                    f"num_generations ({self.num_generations}); the batch counts completions"
                )
        if self.algorithm == "ppo" and self.num_ppo_epochs < 1:
            raise ValueError("num_ppo_epochs must be >= 1")
        if self.use_vllm:
            _check_vllm(self)


def _check_vllm(cfg: "RLJobConfig") -> None:
    import importlib.util

    if cfg.algorithm == "ppo":
        raise ValueError("use_vllm: TRL's PPO has no vLLM path; use rloo/grpo with vLLM, or export the snapshot "
                         "and run PPO at scale elsewhere (README: Scale-out)")
    if cfg.vllm_mode not in ("server", "colocate"):
        raise ValueError(f"vllm_mode must be 'server' or 'colocate', not {cfg.vllm_mode!r}")
    if cfg.vllm_tensor_parallel_size < 1:
        raise ValueError("vllm_tensor_parallel_size must be >= 1")
    if importlib.util.find_spec("vllm") is None:
        raise ValueError("use_vllm needs the vllm package (a CUDA machine: pip install vllm), which is not installed")


def vllm_arguments(cfg: "RLJobConfig") -> dict:
    """The RLOO/GRPO config fields for generation with vLLM ({} without it)."""
    if not cfg.use_vllm:
        return {}
    out: dict = {"use_vllm": True, "vllm_mode": cfg.vllm_mode}
    if cfg.vllm_mode == "server" and cfg.vllm_server_base_url:
        out["vllm_server_base_url"] = cfg.vllm_server_base_url
    if cfg.vllm_mode == "colocate":
        out["vllm_tensor_parallel_size"] = cfg.vllm_tensor_parallel_size
    return out


CONFIG_CLASS = RLJobConfig


def load_prompts(path: str) -> list[list[dict]]:
    out = []
    for r in read_jsonl(path):
        p = r.get("prompt")
        if isinstance(p, str) and p.strip():
            out.append([{"role": "user", "content": p}])
        elif isinstance(p, list) and p:
            out.append([{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in p])
    if not out:
        raise ValueError(f"{path}: no rows with a `prompt`")
    return out


def _template_ids(tokenizer, messages: list[dict]) -> list[int]:
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(enc["input_ids"] if hasattr(enc, "keys") else enc)


def _filter_by_length(prompts, ids, limit: int):
    keep = [i for i, x in enumerate(ids) if len(x) <= limit]
    if len(keep) < len(prompts):
        print(f"rl: dropped {len(prompts) - len(keep)} prompts longer than max_prompt_length={limit}")
    if not keep:
        raise ValueError(f"every prompt is longer than max_prompt_length={limit} tokens")
    return [prompts[i] for i in keep], [ids[i] for i in keep]


def _ppo_pad_token(tokenizer, prompt_ids: list[list[int]]) -> str | None:
    """A special token PPO can treat as padding: not EOS/BOS and absent from every prompt."""
    used = {t for ids in prompt_ids for t in ids}
    banned = {tokenizer.eos_token_id, tokenizer.bos_token_id}
    candidates = [tokenizer.pad_token, tokenizer.unk_token]
    candidates += [tok.content for _, tok in sorted(tokenizer.added_tokens_decoder.items()) if tok.special]
    for c in candidates:
        if c is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(c)
        if tid is not None and tid not in banned and tid not in used:
            return c
    return None


# ---------------------------------------------------------------- PPO


def _ppo_models(start: str, model_path: str, reward_path: str, tokenizer, added_pad: bool) -> tuple:
    """Policy (from ``start``), reference policy, reward and value models (the last two sequence
    classifiers from the reward model), all fp32, embeddings resized for an added pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    f32 = dict(dtype=torch.float32)
    policy = AutoModelForCausalLM.from_pretrained(start, **f32)
    ref_policy = AutoModelForCausalLM.from_pretrained(model_path, **f32)
    reward_model = AutoModelForSequenceClassification.from_pretrained(reward_path, num_labels=1, **f32)
    value_model = AutoModelForSequenceClassification.from_pretrained(reward_path, num_labels=1, **f32)
    if added_pad:
        for m in (policy, ref_policy, reward_model, value_model):
            m.resize_token_embeddings(len(tokenizer))
    for m in (reward_model, value_model):
        m.config.pad_token_id = tokenizer.pad_token_id
    return policy, ref_policy, reward_model, value_model


def _ppo_config(config_cls, cfg: RLJobConfig, remaining: int, model_path: str, reward_path: str):
    batch = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * world_size()
    return config_cls(
        **trainer_arguments(cfg),
        total_episodes=remaining * batch,  # PPO runs ceil(total_episodes / batch) iterations (0 is fine)
        response_length=cfg.response_length,
        temperature=cfg.temperature,
        kl_coef=cfg.kl_coef,
        missing_eos_penalty=cfg.missing_eos_penalty,
        stop_token="eos",
        num_ppo_epochs=cfg.num_ppo_epochs,
        num_mini_batches=1,
        local_rollout_forward_batch_size=max(1, cfg.per_device_batch_size * cfg.gradient_accumulation_steps),
        num_sample_generations=0,  # no eval set; sample tables are printed only with one
        sft_model_path=model_path,
        reward_model_path=reward_path,
    )


def build_ppo(cfg: RLJobConfig, checkpoint: Path | None) -> Job:
    from datasets import Dataset
    from transformers import AutoTokenizer
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # we know PPO is experimental (and gone in 1.13)
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    model_path = resolve_model_path(cfg.model)
    reward_path = resolve_model_path(cfg.reward_model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    original_pad, original_side = tokenizer.pad_token, tokenizer.padding_side
    tokenizer.padding_side = "left"  # queries are left-padded for generation

    prompts = load_prompts(cfg.prompts)
    ids = [_template_ids(tokenizer, p) for p in prompts]
    prompts, ids = _filter_by_length(prompts, ids, cfg.max_prompt_length)
    pad = _ppo_pad_token(tokenizer, ids)
    added = pad is None
    if added:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    else:
        tokenizer.pad_token = pad

    # Resume = restart from the policy weights of the latest checkpoint (see the module docstring).
    done = min(checkpoint_step(checkpoint), cfg.max_steps)  # 0 without a checkpoint
    policy, ref_policy, reward_model, value_model = _ppo_models(str(checkpoint) if done else model_path, model_path,
                                                                reward_path, tokenizer, added)
    args = _ppo_config(PPOConfig, cfg, cfg.max_steps - done, model_path, reward_path)
    dataset = Dataset.from_dict({"input_ids": ids})

    class _PPOTrainer(PPOTrainer):
        # Checkpoints of a restarted run continue the numbering (checkpoint-{N + local step}).
        def _save_checkpoint(self, model, trial):
            self.state.global_step += done
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.state.global_step -= done

    trainer = _PPOTrainer(
        args=args, processing_class=tokenizer, model=policy, ref_model=ref_policy,
        reward_model=reward_model, value_model=value_model, train_dataset=dataset,
    )

    def save_final(dest: Path) -> None:
        tokenizer.padding_side = original_side
        if not added:
            tokenizer.pad_token = original_pad
        trainer.save_model(str(dest))  # PPOTrainer.save_model saves the policy only (+ tokenizer)

    extra = {}
    if done:
        extra["resume"] = (f"PPO has no trainer resume: restarted from the policy weights of {checkpoint.name}; "
                           "optimizer, LR schedule and value model start afresh")
    return Job(trainer=trainer, save_final=save_final, resume=None, step_offset=done,
               raise_after_cancel_save=True, status_extra=extra)


# ---------------------------------------------------------------- RLOO / GRPO


def build_group(cfg: RLJobConfig, checkpoint: Path | None) -> Job:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.algorithm == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer

    model_path = resolve_model_path(cfg.model)
    reward_path = resolve_model_path(cfg.reward_model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = load_prompts(cfg.prompts)
    ids = [_template_ids(tokenizer, p) for p in prompts]
    prompts, _ = _filter_by_length(prompts, ids, cfg.max_prompt_length)
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)

    args = Config(
        **trainer_arguments(cfg),
        num_generations=cfg.num_generations,
        max_completion_length=cfg.response_length,
        temperature=cfg.temperature,
        beta=cfg.kl_coef,
        log_completions=False,
        **vllm_arguments(cfg),
    )
    trainer = Trainer(model=model, reward_funcs=reward_path, args=args, train_dataset=dataset,
                      processing_class=tokenizer)

    def save_final(dest: Path) -> None:
        trainer.save_model(str(dest))

    # The complete checkpoint run_job found, not True: the Trainer's own search takes the
    # highest-numbered folder, even one a crash left half-written (no trainer_state.json).
    return Job(trainer=trainer, save_final=save_final, resume=str(checkpoint) if checkpoint else None)


def build(cfg: RLJobConfig, checkpoint: Path | None) -> Job:
    return build_ppo(cfg, checkpoint) if cfg.algorithm == "ppo" else build_group(cfg, checkpoint)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(RLJobConfig, argv, prog="python -m cai_core.training.rl")
    return run_job(cfg, cfg.algorithm, build)


if __name__ == "__main__":
    raise SystemExit(main())
