"""What every training script shares: the offline environment, small helpers, and the job loop.

`run_job` is the lifecycle every kind goes through: skip a finished run, resume from the latest
checkpoint, train, save final/, write result.json (the run folder is described in runfiles.py),
and stop cleanly on SIGTERM (cancel.py). The base config and its CLI live in jobconfig.py.

This module is importable without torch: heavy imports happen inside functions, so the app can
read config dataclasses and defaults cheaply. The offline environment comes from env.py, which
every training module imports first.
"""
from __future__ import annotations

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)

import dataclasses
import os
import json
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .cancel import TrainingCancelled, cancel_requested, install_sigterm_handler, make_callback
from .env import is_main_process, world_size
from .runfiles import RunFiles

if TYPE_CHECKING:
    from .config import JobConfig

__all__ = [
    "Job",
    "run_job",
    "resolve_device",
    "trainer_arguments",
    "resolve_model_path",
    "read_jsonl",
    "latest_checkpoint",
    "checkpoint_step",
    "is_main_process",
    "world_size",
]


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
