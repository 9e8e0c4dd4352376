"""The facade that app.py, views/ and the CLI call. It owns the store and the loaded models
(one load per model per process, reused across stages)."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from . import constitutions as C
from . import prompt_sets as P
from .backends import Backend, make_backend
from .config import Settings
from .runs import list_runs
from .runners.sl import Progress, SLConfig, SLResult, run_sl, start_sl_run
from .snapshots import SFTSnapshot, sft_records, write_records
from .store import Store
from .types import Constitution

__all__ = ["Services", "STAT_KINDS"]

STAT_KINDS = (
    "prompt_sets", "prompts", "generations", "critiques", "revisions", "comparisons",
    "verdicts", "unparsed_verdicts", "audits", "runs", "checkpoints", "failures",
)


class Services:
    def __init__(self, settings: Settings, *, store: Store | None = None, backend: Backend | None = None) -> None:
        self.settings = settings
        self._store = store
        self._backends: dict[tuple, Backend] = {}
        if backend is not None:
            self._backends[(settings.backend, settings.model)] = backend
        self._lock = threading.Lock()

    # -- resources -----------------------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store(self.settings.db)
            return self._store

    def backend(self, model: str | None = None, kind: str | None = None) -> Backend:
        s = self.settings
        key = (kind or s.backend, model or s.model)
        with self._lock:
            if key not in self._backends:
                self._backends[key] = make_backend(
                    key[0], key[1], base_url=s.base_url, api_key_env=s.api_key_env, device=s.device,
                    dtype=s.dtype, batch_size=s.batch_size, concurrency=s.concurrency,
                )
            return self._backends[key]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- constitutions -------------------------------------------------------------------
    def constitution(self, name: str) -> Constitution:
        return C.find_constitution(name, [Path(d) for d in self.settings.constitution_dirs])

    def constitutions(self) -> dict[str, Path]:
        return C.list_constitutions([Path(d) for d in self.settings.constitution_dirs])

    # -- prompts -------------------------------------------------------------------------
    def import_prompts(self, path: str | Path, *, name: str | None = None, column: str | None = None):
        return P.import_prompt_set(self.store, path, name=name, column=column)

    def prompt_sets(self) -> list[dict]:
        return P.list_prompt_sets(self.store)

    # -- SL phase ------------------------------------------------------------------------
    def sl(
        self, *, prompts: str, constitution: str, config: SLConfig, new_run: bool = False,
        progress: Progress | None = None, should_stop=None,
    ) -> SLResult:
        """Start or resume the SL run these settings define; a finished run is left as is."""
        cons = self.constitution(constitution)
        pset = P.get_prompt_set(self.store, prompts)
        backend = self.backend()
        run, created = start_sl_run(self.store, backend, cons, pset, config, new_run=new_run)
        if run.status == "finished" and not created:
            counts = {t: self.store.count(t, "WHERE run_id = ?", [run.id]) for t in ("generations", "critiques", "revisions")}
            n = len(P.prompts_of(self.store, pset.id, limit=config.limit))
            return SLResult(run=run, created=False, status="finished", prompts=n, failed=0, **counts)
        result = run_sl(self.store, backend, cons, run, config, progress=progress, should_stop=should_stop)
        return replace(result, created=created)

    def runs(self, kind: str | None = None) -> list[dict]:
        return list_runs(self.store, kind)

    # -- export and stats ----------------------------------------------------------------
    def sft_snapshot(self, *, run_id: str | None = None, include_flagged: bool = False) -> SFTSnapshot:
        return sft_records(self.store, run_id=run_id, include_flagged=include_flagged)

    def export_sft(self, out: str | Path, *, run_id: str | None = None, include_flagged: bool = False) -> tuple[Path, SFTSnapshot]:
        snap = self.sft_snapshot(run_id=run_id, include_flagged=include_flagged)
        return write_records(snap.records, out), snap

    def stats(self) -> dict[str, int]:
        s = self.store
        out = {k: s.count(k) for k in STAT_KINDS if k != "unparsed_verdicts"}
        out["unparsed_verdicts"] = s.count("verdicts", "WHERE choice IS NULL")
        out["flagged_outputs"] = sum(
            s.count(t, "WHERE len(flags) > 0") for t in ("generations", "critiques", "revisions")
        )
        return {k: out[k] for k in (*STAT_KINDS, "flagged_outputs")}
