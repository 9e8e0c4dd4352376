"""Cancellation: SIGTERM stops a job at the next step end, saves a checkpoint, status 'cancelled'.

`make_callback` is the TrainerCallback every job adds: it writes the run folder's metrics and
status and turns a cancel request into a clean stop, agreed across DDP ranks.
"""
from __future__ import annotations

import signal
import threading
from typing import Any

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)
from .runfiles import RunFiles, normalize_metrics

__all__ = ["TrainingCancelled", "cancel_requested", "install_sigterm_handler", "make_callback"]

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
