"""Background jobs for the app: long work (SL runs, sampling, judging, comparisons, watching a
training subprocess) runs off the request thread, one at a time (two CPU cores cannot do two
heavy things at once), with progress, a log tail and cancel. Results land in DuckDB as the
work goes, so a crash of the app loses at most the chunk in flight, and a rerun resumes."""
from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Reporter", "JobInfo", "JobManager"]


class Reporter:
    """What a job function gets: report progress, log lines, and check for cancel."""

    def __init__(self, job: "JobInfo") -> None:
        self._job = job

    def progress(self, done: int, total: int, what: str = "") -> None:
        self._job.done, self._job.total = int(done), int(total)
        if what:
            self._job.what = what

    def log(self, line: str) -> None:
        self._job.log.append(f"{time.strftime('%H:%M:%S')} {line}")

    def should_stop(self) -> bool:
        return self._job.cancel_requested

    def set_run_id(self, run_id: str) -> None:
        """Name the store run this job works on (the UI links to it)."""
        self._job.run_id = run_id


@dataclass
class JobInfo:
    id: str
    kind: str
    title: str
    status: str = "queued"
    """queued | running | finished | failed | cancelled."""
    done: int = 0
    total: int = 0
    what: str = ""
    error: str | None = None
    result: Any = None
    run_id: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    cancel_requested: bool = False
    log: deque = field(default_factory=lambda: deque(maxlen=200))

    def view(self) -> dict:
        """A JSON-able snapshot for the UI."""
        frac = (self.done / self.total) if self.total else (1.0 if self.status == "finished" else 0.0)
        return {
            "id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
            "done": self.done, "total": self.total, "fraction": round(frac, 4), "what": self.what,
            "error": self.error, "run_id": self.run_id,
            "elapsed_s": round((self.ended or time.time()) - self.started, 1) if self.started else 0.0,
            "log": list(self.log)[-30:],
        }


class JobManager:
    def __init__(self) -> None:
        self._jobs: dict[str, JobInfo] = {}
        self._queue: "queue.Queue[tuple[JobInfo, Callable]]" = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="cai-jobs", daemon=True)
        self._worker.start()

    def submit(self, kind: str, title: str, fn: Callable[[Reporter], Any]) -> str:
        with self._lock:
            job = JobInfo(id=f"job-{next(self._ids)}", kind=kind, title=title)
            self._jobs[job.id] = job
        job.log.append(f"{time.strftime('%H:%M:%S')} queued: {title}")
        self._queue.put((job, fn))
        return job.id

    def get(self, job_id: str) -> JobInfo | None:
        return self._jobs.get(job_id)

    def list(self) -> list[JobInfo]:
        return sorted(self._jobs.values(), key=lambda j: j.submitted, reverse=True)

    def cancel(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status not in ("queued", "running"):
            return False
        job.cancel_requested = True
        job.log.append(f"{time.strftime('%H:%M:%S')} cancel requested")
        return True

    def wait(self, job_id: str, timeout: float = 60.0) -> JobInfo:
        """Block until the job ends (tests and scripts; the UI polls instead)."""
        deadline = time.time() + timeout
        job = self._jobs[job_id]
        while job.status in ("queued", "running") and time.time() < deadline:
            time.sleep(0.05)
        return job

    def _work(self) -> None:
        while True:
            job, fn = self._queue.get()
            if job.cancel_requested:
                job.status, job.ended = "cancelled", time.time()
                continue
            job.status, job.started = "running", time.time()
            rep = Reporter(job)
            rep.log("started")
            try:
                job.result = fn(rep)
                job.status = "cancelled" if job.cancel_requested else "finished"
                rep.log(job.status)
            except Exception as e:  # a failed job must never kill the worker thread
                job.status, job.error = "failed", f"{type(e).__name__}: {e}"
                rep.log(f"failed: {job.error}")
                rep.log(traceback.format_exc(limit=3).strip().splitlines()[-1])
            finally:
                job.ended = time.time()
