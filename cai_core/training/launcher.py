"""Launch, watch, cancel and ingest training jobs.

A job is a subprocess running one of the training scripts (``python -m cai_core.training.X
--config run_dir/config.json``, or under ``accelerate launch``). It never opens DuckDB: it
writes metrics.jsonl, status.json, checkpoints and result.json into its run folder, and this
module (in the process that owns the store) ingests them. Re-launching the same settings
finds the same run and folder, so the script resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..ids import stable_id
from ..store import Store
from ..store import training as training_store
from ..store.runs import find_or_create_run, get_run, set_status
from ..types import Checkpoint, Run, train_run_kind
from . import KINDS

__all__ = ["JobState", "launch", "ingest", "cancel", "wait", "read_json", "job_state", "log_tail"]



@dataclass(frozen=True, slots=True)
class JobState:
    run_id: str
    kind: str
    status: str
    """running | finished | cancelled | failed | interrupted (process gone without a verdict)."""
    step: int
    max_steps: int
    run_dir: str
    error: str | None = None
    checkpoint_id: str | None = None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or caught mid-replace
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def launch(store: Store, *, kind: str, config: dict, runs_dir: str | Path, base_model: str,
           snapshot_hash: str | None, new_run: bool = False, num_processes: int = 1) -> tuple[Run, subprocess.Popen | None]:
    """Start (or resume) the training run these settings define. Returns the run and the
    process (None when the run had already finished: it is only ingested)."""
    if kind not in KINDS:
        raise ValueError(f"unknown training kind {kind!r}; one of {', '.join(KINDS)}")
    ident = {k: v for k, v in config.items() if k != "output_dir"}
    run, _ = find_or_create_run(store, kind=train_run_kind(kind), config={"snapshot": snapshot_hash, **ident},
                                model=base_model, seed=int(config.get("seed", 0)), new=new_run)
    run_dir = Path(runs_dir).resolve() / run.id
    run_dir.mkdir(parents=True, exist_ok=True)
    full = {**config, "output_dir": str(run_dir), "snapshot_hash": snapshot_hash}
    (run_dir / "config.json").write_text(json.dumps(full, indent=2))
    result = read_json(run_dir / "result.json")
    if result and result.get("status") == "finished":
        ingest(store, run.id, runs_dir)
        return run, None
    module = KINDS[kind]
    if num_processes > 1:
        accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
        # --multi_gpu is accelerate's data-parallel launcher (torchrun); without a GPU its
        # workers train on the CPU over gloo. (`--cpu` would start one process only.)
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", module, "--config", str(run_dir / "config.json")]
    else:
        cmd = [sys.executable, "-m", module, "--config", str(run_dir / "config.json")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = open(run_dir / "log.txt", "ab")
    log.write(f"\n$ {' '.join(cmd)}\n".encode())
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    log.close()
    (run_dir / "launcher.json").write_text(json.dumps({"pid": proc.pid, "cmd": cmd, "started": time.time()}))
    set_status(store, run.id, "running")
    return run, proc


def job_state(run_dir: Path, run: Run) -> JobState:
    status = read_json(run_dir / "status.json") or {}
    result = read_json(run_dir / "result.json") or {}
    launcher = read_json(run_dir / "launcher.json") or {}
    state = result.get("status") or status.get("status") or "running"
    if state == "running" and not (_alive(status.get("pid")) or _alive(launcher.get("pid"))):
        state = "interrupted"
    return JobState(run.id, run.kind.removeprefix("train-"), state, int(status.get("step") or 0),
                    int(status.get("max_steps") or 0), str(run_dir), status.get("error") or result.get("error"))


def ingest(store: Store, run_id: str, runs_dir: str | Path) -> JobState:
    """Copy new metrics into DuckDB, update the run's status, register its final checkpoint."""
    run = get_run(store, run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r}")
    run_dir = Path(runs_dir).resolve() / run_id
    rows: dict[int, dict] = {}
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                m = json.loads(line)
            except ValueError:  # a line being written right now
                continue
            if isinstance(m, dict) and "step" in m:  # a step logged twice: the later line wins
                rows[int(m["step"])] = {"run_id": run_id, "step": int(m["step"]), "time": m.get("time"), "metrics": m}
    # The run folder is the record: a step redone after a crash (the job rewrites its lines)
    # replaces what an earlier ingest stored for it.
    stored = training_store.stored_metrics(store, run_id)
    training_store.store_metrics(store, [r for st, r in rows.items() if stored.get(st) != r["metrics"]])
    state = job_state(run_dir, run)
    ckpt_id = None
    result = read_json(run_dir / "result.json") or {}
    if state.status == "finished" and result.get("final_path"):
        ckpt_id = stable_id("checkpoint", run_id, result["final_path"])
        training_store.add_checkpoint(store, Checkpoint(
            id=ckpt_id, run_id=run_id, path=result["final_path"], base_model=result.get("base_model") or run.model,
            kind=state.kind, snapshot_hash=result.get("snapshot_hash"), config=result.get("config") or {}))  # type: ignore[arg-type]
    if state.status != "running":
        set_status(store, run_id, state.status, state.error)
    return replace(state, checkpoint_id=ckpt_id) if ckpt_id else state


def log_tail(run_dir: str | Path, lines: int = 40) -> str:
    """The last lines of the job's log (its last 20 kB, undecodable bytes replaced)."""
    path = Path(run_dir) / "log.txt"
    if not path.is_file():
        return ""
    text = path.read_bytes()[-20000:].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def cancel(run_dir: str | Path) -> bool:
    """Ask the job to stop: it saves a checkpoint and exits (a rerun resumes)."""
    run_dir = Path(run_dir)
    for name in ("status.json", "launcher.json"):
        pid = (read_json(run_dir / name) or {}).get("pid")
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            return True
    return False


def wait(store: Store, run: Run, proc: subprocess.Popen | None, runs_dir: str | Path, *,
         progress: Callable[[int, int, str], None] | None = None, poll: float = 2.0) -> JobState:
    """Block until the job ends, ingesting as it goes (the CLI's way; the app polls ingest)."""
    state = ingest(store, run.id, runs_dir)
    while proc is not None and proc.poll() is None:
        time.sleep(poll)
        state = ingest(store, run.id, runs_dir)
        if progress:
            progress(state.step, state.max_steps or 1, state.status)
    state = ingest(store, run.id, runs_dir)
    if proc is not None and proc.returncode not in (0, None) and state.status in ("running", "interrupted"):
        set_status(store, run.id, "failed", f"exit code {proc.returncode}; see {Path(state.run_dir) / 'log.txt'}")
        state = replace(state, status="failed", error=f"exit code {proc.returncode}")
    return state
