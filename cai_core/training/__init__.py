"""Training jobs: SFT, reward model, RL (PPO / RLOO / GRPO), each a subprocess-friendly script.

Each kind maps to a module runnable as `python -m <module> --config cfg.json` (or under
`accelerate launch -m <module> ...`); `default_config(kind, ...)` gives a JSON-able config with
CPU-sized defaults. Importing this package does not import torch.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from ..types import RL_KINDS, TRAIN_KINDS

__all__ = ["KINDS", "RL_KINDS", "default_config", "config_class"]

KINDS: dict[str, str] = {kind: f"cai_core.training.{'rl' if kind in RL_KINDS else kind}" for kind in TRAIN_KINDS}
"""Job kind -> module to run with `python -m` (the one registry of training kinds)."""


# Sized for SmolLM2-135M on 2 CPU cores (see FACTS.md: SFT ~3 s/step at batch 4, GRPO/RLOO
# ~3-4 s/step, PPO ~1-1.5 min per 4-episode iteration).
_CPU_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {"max_steps": 50, "learning_rate": 2e-5, "per_device_batch_size": 4, "save_steps": 10},
    "reward": {"max_steps": 50, "learning_rate": 1e-5, "per_device_batch_size": 4, "save_steps": 10},
    "dpo": {"max_steps": 20, "learning_rate": 1e-6, "per_device_batch_size": 2, "save_steps": 5},
    "ppo": {"max_steps": 10, "learning_rate": 3e-6, "per_device_batch_size": 4, "save_steps": 2,
            "response_length": 32, "num_ppo_epochs": 2},
    "rloo": {"max_steps": 50, "learning_rate": 1e-6, "per_device_batch_size": 4, "num_generations": 4,
             "save_steps": 10, "response_length": 32},
    "grpo": {"max_steps": 50, "learning_rate": 1e-6, "per_device_batch_size": 4, "num_generations": 4,
             "save_steps": 10, "response_length": 32},
}


def config_class(kind: str) -> type:
    """The config dataclass of a kind (SFTJobConfig, RewardJobConfig, DPOJobConfig or RLJobConfig)."""
    if kind not in KINDS:
        raise ValueError(f"unknown training kind {kind!r}; expected one of {sorted(KINDS)}")
    return importlib.import_module(KINDS[kind]).CONFIG_CLASS


def default_config(kind: str, **fields: Any) -> dict[str, Any]:
    """Dataclass defaults + CPU defaults for `kind` + `fields`, as a JSON-able dict.

    RL kinds set `algorithm`. Required fields (model, output_dir, data / prompts / reward_model)
    appear only when given. SFT with `lora=True` defaults to a LoRA-sized learning rate (2e-4).
    Unknown field names raise TypeError.
    """
    cls = config_class(kind)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise TypeError(f"{kind}: unknown config fields {unknown}")
    out = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    out.update(_CPU_DEFAULTS[kind])
    if kind in RL_KINDS:
        out["algorithm"] = kind
    if kind == "sft" and fields.get("lora") and "learning_rate" not in fields:
        out["learning_rate"] = 2e-4
    out.update(fields)
    if kind in RL_KINDS and out["algorithm"] != kind:
        raise ValueError(f"kind {kind!r} but algorithm={out['algorithm']!r}")
    return {k: out[k] for k in [f.name for f in dataclasses.fields(cls)] if k in out}
