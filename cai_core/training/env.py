"""The environment every training module starts from: imported first by each of them, before
transformers / huggingface_hub load (they read these variables once).

Models are local folders; a training job must never reach a hub. A caller's explicit setting
wins. Also the launcher-given facts about this process (rank, world size), known before any
process group exists. Importable without torch.
"""
from __future__ import annotations

import os

__all__ = ["is_main_process", "world_size"]

for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def is_main_process() -> bool:
    """RANK 0 (or no launcher)."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))
