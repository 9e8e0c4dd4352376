"""What every training script shares: the base config, its CLI, the run folder, and the job loop.

A training job is a subprocess that never opens the database (DuckDB allows one writer): it reads
a snapshot file and writes only into its run folder, which the app watches and ingests:

    output_dir/
      status.json     {"status", "step", "max_steps", "kind", "pid", "error", ...}, replaced atomically
      metrics.jsonl   one JSON object per logging step: {"step", "time", ...numeric metrics}
      checkpoint-N/   HF Trainer checkpoints (save_steps, at most 2 kept); resume starts from the latest
      final/          the trained model + tokenizer (plain `save_pretrained` folder)
      result.json     {"status", "kind", "final_path", "base_model", "snapshot_hash", "steps", "config",
                       "last_metrics", ...} written when the job ends (finished, cancelled or failed)

This module is importable without torch: heavy imports happen inside functions, so the app can
read config dataclasses and defaults cheaply. Only the main process (RANK 0) writes the files.
"""
from __future__ import annotations

import os

# Models are local folders; a training job must never reach a hub. Set before transformers /
# huggingface_hub are imported (they read these once); a caller's explicit setting wins.
for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import dataclasses
import json
import math
import re
import signal
import sys
import threading
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

__all__ = [
    "JobConfig",
    "RunFiles",
    "TrainingCancelled",
    "Job",
    "parse_config",
    "run_job",
    "resolve_device",
    "trainer_arguments",
    "read_jsonl",
    "latest_checkpoint",
    "normalize_metrics",
    "cancel_requested",
    "install_sigterm_handler",
]

Status = Literal["running", "finished", "cancelled", "failed"]


@dataclass(kw_only=True)
class JobConfig:
    """Fields shared by every training kind. JSON file via --config; any field as a flag."""

    model: str = field(metadata={"help": "HF model folder to start from ('embedded' = the embedded SmolLM2)."})
    output_dir: str = field(metadata={"help": "Run folder: metrics, status, checkpoints, final/."})
    max_steps: int = field(default=50, metadata={"help": "Optimiser steps (PPO: PPO iterations)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (linear decay)."})
    per_device_batch_size: int = field(
        default=4,
        metadata={"help": "Examples per device per micro-step (RLOO/GRPO: completions, a multiple of "
                          "num_generations; PPO: episodes)."},
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimiser step."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, init and sampling."})
    save_steps: int = field(default=10, metadata={"help": "Checkpoint every N steps (2 kept)."})
    logging_steps: int = field(default=1, metadata={"help": "Write a metrics row every N steps."})
    snapshot_hash: str | None = field(default=None, metadata={"help": "Content hash of the data snapshot (recorded only)."})
    device: str = field(default="auto", metadata={"help": "'auto' (cuda if available, else cpu), 'cpu' or 'cuda'."})
    num_threads: int = field(
        default=0,
        metadata={"help": "torch CPU threads (0 = torch's default). Keep threads <= free cores: on a "
                          "busy 2-core machine one thread can be several times faster than two."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in backward (saves memory, ~20% slower; off on CPU)."},
    )

    def validate(self) -> None:
        """Raise ValueError on inconsistent settings (checked before anything heavy loads)."""
        if self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        if self.save_steps < 1 or self.logging_steps < 1:
            raise ValueError("save_steps and logging_steps must be >= 1")
        if self.num_threads < 0:
            raise ValueError("num_threads must be >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {self.device!r}")


# ---------------------------------------------------------------- config + CLI


def _field_type(tp: Any) -> tuple[Any, bool]:
    """(base type, optional) for annotations like `int`, `str | None`, `Literal[...]`."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return tp, False


def _coerce(name: str, tp: Any, value: Any) -> Any:
    base, optional = _field_type(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} may not be null")
    if typing.get_origin(base) is Literal:
        if value not in typing.get_args(base):
            raise ValueError(f"{name} must be one of {typing.get_args(base)}, not {value!r}")
        return value
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{name} must be a boolean, not {value!r}")
    if base is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} must be an integer, not {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number, not {value!r}")
        return float(value)
    if base is str:
        return str(value)
    return value


def build_parser(cls: type[JobConfig], prog: str | None = None) -> argparse.ArgumentParser:
    """--config FILE plus one flag per dataclass field (`--max-steps 3`, `--lora/--no-lora`)."""
    parser = argparse.ArgumentParser(prog=prog, description=(cls.__doc__ or "").strip())
    parser.add_argument("--config", metavar="FILE", help="JSON file with the config fields; flags override it.")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        base, _ = _field_type(hints[f.name])
        default = "required" if f.default is dataclasses.MISSING else f"default: {f.default!r}"
        text = f"{f.metadata.get('help', '')} ({default})".replace("%", "%%")  # argparse formats help with %
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is Literal:
            parser.add_argument(flag, choices=list(typing.get_args(base)), **kw)
        else:
            parser.add_argument(flag, type=base if base in (int, float) else str, **kw)
    return parser


def parse_config(cls: type[JobConfig], argv: list[str] | None = None, prog: str | None = None) -> JobConfig:
    """Dataclass defaults < JSON config file < explicit flags. Exits with status 2 on bad input."""
    parser = build_parser(cls, prog)
    ns = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    path = ns.pop("config", None)
    if path:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            parser.error(f"--config {path}: {e}")
        if not isinstance(loaded, dict):
            parser.error(f"--config {path}: expected a JSON object")
        values.update(loaded)
    values.update(ns)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    # Unknown keys are reported but not fatal: a launcher may add bookkeeping keys ("kind", ...).
    unknown = sorted(set(values) - names)
    if unknown:
        print(f"warning: ignoring unknown config keys {unknown}", file=sys.stderr)
    try:
        kwargs = {k: _coerce(k, hints[k], v) for k, v in values.items() if k in names}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs]
        if missing:
            raise ValueError("missing required fields: " + ", ".join(missing))
        cfg = cls(**kwargs)
        cfg.validate()
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    return cfg


# ---------------------------------------------------------------- small helpers


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def trainer_arguments(cfg: JobConfig) -> dict[str, Any]:
    """The TrainingArguments every kind shares (TRL config classes accept them all)."""
    device = resolve_device(cfg.device)
    import torch

    return dict(
        output_dir=cfg.output_dir,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        report_to="none",
        use_cpu=device == "cpu",
        # TRL defaults bf16 to True; autocast on CPU is slower and noisier than fp32 here.
        bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
        fp16=False,
        # TRL defaults this to True; on CPU memory is not the constraint, time is.
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient_checkpointing
        disable_tqdm=True,  # progress bars are noise in a log file; PrinterCallback prints each log
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trainable weight gets a gradient; skip DDP's graph walk
    )


def resolve_model_path(name: str) -> str:
    """A local folder (or 'embedded'); never a hub id."""
    from ..models import resolve_model

    return str(resolve_model(name))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSONL file (blank lines skipped); a clear error names the bad line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"{path}:{i}: not JSON: {e}") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


_CKPT = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The highest-numbered complete `checkpoint-N` folder (one with trainer_state.json)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _CKPT.match(p.name)) and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def checkpoint_step(path: Path | None) -> int:
    return int(_CKPT.match(path.name).group(1)) if path is not None else 0


def is_main_process() -> bool:
    """RANK 0 (or no launcher). Known before any process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


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


# ---------------------------------------------------------------- cancellation

_CANCEL = threading.Event()


class TrainingCancelled(Exception):
    """Raised (by the PPO path) after the cancellation checkpoint is saved."""


def cancel_requested() -> bool:
    return _CANCEL.is_set()


def install_sigterm_handler() -> Any:
    """SIGTERM -> stop at the next step end, checkpoint, status 'cancelled'. Returns the old handler."""
    _CANCEL.clear()

    def _handler(signum, frame):
        _CANCEL.set()

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _handler)
    return None


def _agreed_cancel(device: Any) -> bool:
    """Every rank must stop at the same step, or DDP deadlocks: OR the flag across ranks."""
    flag = _CANCEL.is_set()
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        import torch

        t = torch.tensor([1 if flag else 0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item())
        if flag:
            _CANCEL.set()
    return flag


def make_callback(run: RunFiles, *, step_offset: int = 0, raise_after_cancel_save: bool = False,
                  status_extra: dict | None = None):
    """A TrainerCallback writing metrics.jsonl / status.json and handling SIGTERM.

    step_offset shifts reported steps (the PPO restart path starts counting at 0 again);
    raise_after_cancel_save is for PPO, whose loop ignores `should_training_stop`.
    """
    from transformers import TrainerCallback

    class RunCallback(TrainerCallback):
        def __init__(self):
            self.cancelled = False
            self.summary: dict[str, float] = {}
            self.step = step_offset

        def _main(self, state) -> bool:
            return bool(getattr(state, "is_world_process_zero", True)) and run.main

        def on_train_begin(self, args, state, control, **kw):
            self.step = state.global_step + step_offset
            if self._main(state):
                run.write_status("running", self.step, **(status_extra or {}))

        def on_log(self, args, state, control, logs=None, **kw):
            self.step = state.global_step + step_offset
            logs = logs or {}
            # The Trainer's end-of-training summary is not a step: keep it for result.json.
            if "train_runtime" in logs:
                self.summary = normalize_metrics(logs)
                return
            if not self._main(state):
                return
            metrics = normalize_metrics(logs, vf_coef=getattr(args, "vf_coef", None))
            if metrics:
                run.append_metrics(self.step, metrics)
            run.write_status("running", self.step, **(status_extra or {}))

        def on_step_end(self, args, state, control, **kw):
            self.step = state.global_step + step_offset
            if not self.cancelled and _agreed_cancel(getattr(args, "device", "cpu")):
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_save(self, args, state, control, **kw):
            if self.cancelled and raise_after_cancel_save:
                raise TrainingCancelled()

    return RunCallback()


# ---------------------------------------------------------------- the job loop


@dataclass
class Job:
    """What a script's `build` returns: a ready trainer and how to finish it."""

    trainer: Any
    save_final: Callable[[Path], None]
    """Writes the final model + tokenizer into the given folder (called on every rank)."""
    resume: bool | str | None = None
    """Passed to trainer.train(resume_from_checkpoint=...); None for trainers without resume (PPO)."""
    step_offset: int = 0
    raise_after_cancel_save: bool = False
    status_extra: dict = field(default_factory=dict)


def run_job(cfg: JobConfig, kind: str, build: Callable[[JobConfig, Path | None], Job]) -> int:
    """The shared lifecycle: no-op if finished, resume, train, final/, result.json, SIGTERM, errors."""
    run = RunFiles(cfg.output_dir, kind, cfg.max_steps, main=is_main_process())
    previous = run.read_json(run.result_path)
    if previous and previous.get("status") == "finished":
        print(f"{kind}: {run.dir} already finished; nothing to do.", file=sys.stderr)
        return 0
    previous_handler = install_sigterm_handler()
    try:
        return _run(cfg, kind, build, run)
    finally:
        # main() may run in-process (tests, notebooks): give SIGTERM back to its owner.
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _run(cfg: JobConfig, kind: str, build: Callable[[JobConfig, Path | None], Job], run: RunFiles) -> int:
    config = dataclasses.asdict(cfg)
    ckpt = latest_checkpoint(run.dir)
    step = checkpoint_step(ckpt)
    run.rewind_metrics(step)
    if run.main:
        # A stale result (cancelled / failed) must not make the app think this attempt is over.
        run.result_path.unlink(missing_ok=True)
    run.write_status("running", step, resumed_from=ckpt.name if ckpt else None)
    callback = None
    try:
        import torch
        from transformers import set_seed

        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        set_seed(cfg.seed)  # model heads initialised at load time (the reward `score`) are seeded too
        job = build(cfg, ckpt)
        extra = {"resumed_from": ckpt.name if ckpt else None, **job.status_extra}
        callback = make_callback(run, step_offset=job.step_offset,
                                 raise_after_cancel_save=job.raise_after_cancel_save, status_extra=extra)
        job.trainer.add_callback(callback)
        if cancel_requested():
            raise TrainingCancelled()  # SIGTERM while loading: nothing trained, nothing to save
        if job.resume is None:
            job.trainer.train()
        else:
            job.trainer.train(resume_from_checkpoint=job.resume)
        if callback.cancelled:
            raise TrainingCancelled()
        steps = job.trainer.state.global_step + job.step_offset
        job.save_final(run.final_path)
        run.write_result("finished", steps=steps, config=config, final=True,
                         train_summary=callback.summary, **extra)
        run.write_status("finished", steps, **extra)
        return 0
    except TrainingCancelled:
        steps = callback.step if callback is not None else step
        saved = latest_checkpoint(run.dir)
        run.write_result("cancelled", steps=steps, config=config, final=False,
                         checkpoint=saved.name if saved else None)
        run.write_status("cancelled", steps, checkpoint=saved.name if saved else None)
        print(f"{kind}: cancelled at step {steps}", file=sys.stderr)
        return 0
    except BaseException as e:
        steps = callback.step if callback is not None else step
        msg = f"{type(e).__name__}: {e}"
        run.write_result("failed", steps=steps, config=config, final=False, error=msg)
        run.write_status("failed", steps, error=msg)
        raise
