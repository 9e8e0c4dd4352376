"""The run folder: the only place a training job writes, and what the app watches and ingests.

A training job is a subprocess that never opens the database (DuckDB allows one writer): it reads
a snapshot file and writes only into its run folder:

    output_dir/
      status.json     {"status", "step", "max_steps", "kind", "pid", "error", ...}, replaced atomically
      metrics.jsonl   one JSON object per logging step: {"step", "time", ...numeric metrics}
      checkpoint-N/   HF Trainer checkpoints (save_steps, at most 2 kept); resume starts from the latest
      final/          the trained model + tokenizer (plain `save_pretrained` folder)
      result.json     {"status", "kind", "final_path", "base_model", "snapshot_hash", "steps", "config",
                       "last_metrics", ...} written when the job ends (finished, cancelled or failed)

Only the main process (RANK 0) writes the files. Importable without torch.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

from .env import world_size

__all__ = ["RunFiles", "normalize_metrics"]

Status = Literal["running", "finished", "cancelled", "failed"]


# Names TRL/transformers log -> the stable names the app plots. The original keys are kept too.
_ALIASES = {
    "objective/scores": "reward",  # PPO: mean reward-model score of the sampled responses
    "objective/kl": "kl",  # PPO: mean sequence KL(policy || reference)
    "lr": "learning_rate",  # PPO
}


def normalize_metrics(logs: dict[str, Any], *, vf_coef: float | None = None) -> dict[str, float]:
    """Finite numeric values only (JSON has no NaN), plus the stable aliases."""
    out: dict[str, float] = {}
    for k, v in logs.items():
        if hasattr(v, "item") and callable(v.item):  # a 0-d tensor / numpy scalar
            try:
                v = v.item()
            except (TypeError, ValueError):
                continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        out[k] = v
    for src, dst in _ALIASES.items():
        if src in out and dst not in out:
            out[dst] = out[src]
    # PPO logs its two loss terms separately; `loss` is the optimised sum, averaged over micro-batches.
    if "loss" not in out and "loss/policy_avg" in out:
        out["loss"] = out["loss/policy_avg"] + (vf_coef or 0.0) * out.get("loss/value_avg", 0.0)
    return out


# ---------------------------------------------------------------- run folder


class RunFiles:
    """The files of one run folder. Writes are no-ops on non-main processes."""

    def __init__(self, output_dir: str | os.PathLike, kind: str, max_steps: int, *, main: bool = True):
        self.dir = Path(output_dir)
        self.kind = kind
        self.max_steps = max_steps
        self.main = main
        self.last_metrics: dict[str, float] = {}
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)

    status_path = property(lambda self: self.dir / "status.json")
    metrics_path = property(lambda self: self.dir / "metrics.jsonl")
    result_path = property(lambda self: self.dir / "result.json")
    final_path = property(lambda self: self.dir / "final")

    def _write_json(self, path: Path, obj: dict) -> None:
        if not self.main:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(obj, indent=1, default=str))
        os.replace(tmp, path)  # atomic: a reader sees the old or the new file, never half of one

    def rewind_metrics(self, step: int) -> None:
        """Keep rows up to `step` (a resumed run redoes later steps: a crash after the last
        checkpoint must not leave duplicate steps) and remember their latest values."""
        if not self.main or not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                kept.append(line)
                self.last_metrics.update({k: v for k, v in row.items() if k not in ("step", "time")})
        tmp = self.metrics_path.with_name(f".metrics.jsonl.{os.getpid()}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.metrics_path)

    def read_json(self, path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def write_status(self, status: Status, step: int, error: str | None = None, **extra: Any) -> None:
        self._write_json(self.status_path, {
            "status": status, "step": int(step), "max_steps": self.max_steps, "kind": self.kind,
            "pid": os.getpid(), "error": error, "time": time.time(), **extra,
        })

    def append_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.last_metrics.update(metrics)
        if not self.main:
            return
        row = {"step": int(step), "time": time.time(), **metrics}
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

    def write_result(self, status: Status, *, steps: int, config: dict, final: bool,
                     error: str | None = None, **extra: Any) -> None:
        self._write_json(self.result_path, {
            "status": status, "kind": self.kind,
            "final_path": str(self.final_path.resolve()) if final else None,
            "base_model": config.get("model"), "snapshot_hash": config.get("snapshot_hash"),
            "steps": int(steps), "config": config, "last_metrics": dict(self.last_metrics),
            "error": error, "world_size": world_size(), **extra,
        })
