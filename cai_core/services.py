"""The facade that app.py, views/ and the CLI call. It owns the store and the loaded models
(one load per model per process, reused across stages)."""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import constitutions as C
from . import prompt_sets as P
from .backends import Backend, make_backend
from .config import Settings
from .store.runs import list_runs
from .runners.sl import Progress, SLConfig, SLResult, run_sl, start_sl_run
from .labels.snapshots import SFTSnapshot, sft_records, write_records
from .store import Store
from .types import Constitution

if TYPE_CHECKING:
    from .runners.judge import JudgeConfig, JudgeResult
    from .runners.compare import CompareConfig
    from .runners.pairs import PairsConfig, PairsResult

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
        kind = kind or s.backend
        model = model or s.model
        if kind == "local" and (kind, model) not in self._backends:
            model = self.resolve_model(model)  # 'base', 'sft', a checkpoint id -> a folder
        key = (kind, model)
        with self._lock:
            if key not in self._backends:
                self._backends[key] = make_backend(
                    key[0], key[1], base_url=s.base_url, api_key_env=s.api_key_env, device=s.device,
                    dtype=s.dtype, batch_size=s.batch_size, concurrency=s.concurrency, timeout=s.timeout,
                    max_retries=s.max_retries,
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
        progress: Progress | None = None, should_stop=None, model: str | None = None,
    ) -> SLResult:
        """Start or resume the SL run these settings define; a finished run is left as is."""
        cons = self.constitution(constitution)
        pset = P.get_prompt_set(self.store, prompts)
        backend = self.backend(model)
        run, created = start_sl_run(self.store, backend, cons, pset, config, new_run=new_run)
        if run.status == "finished" and not created:
            counts = {t: self.store.count(t, "WHERE run_id = ?", [run.id]) for t in ("generations", "critiques", "revisions")}
            n = len(P.prompts_of(self.store, pset.id, limit=config.limit))
            return SLResult(run=run, created=False, status="finished", prompts=n, failed=0, **counts)
        result = run_sl(self.store, backend, cons, run, config, progress=progress, should_stop=should_stop)
        return replace(result, created=created)

    def runs(self, kind: str | None = None) -> list[dict]:
        return list_runs(self.store, kind)

    # -- RL phase: pairs, judging, labels -----------------------------------------------
    def resolve_model(self, name: str) -> str:
        """'base'/'embedded' -> embedded; a checkpoint id or training run id -> its folder;
        anything else is passed through (a folder, or a served model's name)."""
        if name in ("base", "embedded"):
            return "embedded"
        rows = self.store.query(
            "SELECT path FROM checkpoints WHERE id = ? OR run_id = ? ORDER BY created_at DESC LIMIT 1", [name, name])
        if rows:
            return rows[0]["path"]
        if name in ("sft", "reward", "ppo", "rloo", "grpo", "rl"):
            kinds = ["ppo", "rloo", "grpo"] if name == "rl" else [name]
            rows = self.store.query(
                "SELECT path FROM checkpoints WHERE kind IN (SELECT unnest(?)) ORDER BY created_at DESC LIMIT 1", [kinds])
            if not rows:
                raise KeyError(f"no {name} checkpoint yet (train one with `cai train {kinds[0]}`)")
            return rows[0]["path"]
        return name

    def pairs(self, *, prompts: str, config: "PairsConfig", model: str | None = None, new_run: bool = False,
              progress: Progress | None = None, should_stop=None) -> "PairsResult":
        from .runners.pairs import run_pairs, start_pairs_run

        backend = self.backend(model)
        pset = P.get_prompt_set(self.store, prompts)
        run, created = start_pairs_run(self.store, backend, pset, config, new_run=new_run)
        result = run_pairs(self.store, backend, run, config, progress=progress, should_stop=should_stop)
        return replace(result, created=created)

    def pairs_from_sl(self, sl_run_id: str) -> int:
        from .runners.pairs import pairs_from_sl

        return pairs_from_sl(self.store, sl_run_id)

    def judge(self, *, constitution: str, config: "JudgeConfig", judges: list[str] | None = None,
              new_run: bool = False, progress: Progress | None = None, should_stop=None) -> "JudgeResult":
        from .runners.judge import run_judge, start_judge_run

        cons = self.constitution(constitution)
        backends = [self.backend(j) for j in (judges or [self.settings.model])]
        run, _ = start_judge_run(self.store, backends, cons, config, new_run=new_run)
        return run_judge(self.store, backends, cons, run, config, progress=progress, should_stop=should_stop)

    def record_audit(self, comparison_id: str, *, author: str, action: str, reason: str | None = None,
                     verdict_id: str | None = None):
        from .labels.audits import record_audit

        return record_audit(self.store, comparison_id, author=author, action=action, reason=reason, verdict_id=verdict_id)

    def effective_labels(self, **kw):
        from .labels.audits import effective_labels

        return effective_labels(self.store, **kw)

    def export_preferences(self, out: str | Path, *, judge_run_id: str | None = None, source: str | None = None,
                           min_confidence: float = 0.0):
        from .labels.snapshots import preference_records, register_snapshot

        snap = preference_records(self.store, judge_run_id=judge_run_id, source=source, min_confidence=min_confidence)
        path = write_records(snap.records, out)
        register_snapshot(self.store, kind="preferences", content_hash=snap.content_hash, path=path,
                          records=len(snap.records), overrides=snap.overrides,
                          config={"judge_run": judge_run_id, "source": source, "min_confidence": min_confidence})
        return path, snap

    def compare(self, *, models: list[str], prompts: str, constitution: str = "harmless", judge: str | None = None,
                config: "CompareConfig | None" = None, new_run: bool = False, progress: Progress | None = None):
        """Answers of each model on the same prompts, judged pairwise -> (run, EvalReport)."""
        from .runners.compare import CompareConfig, run_compare

        loaders = {name: (lambda name=name: self.backend(name)) for name in models}
        return run_compare(self.store, loaders, self.backend(judge), self.constitution(constitution),
                           P.get_prompt_set(self.store, prompts), config or CompareConfig(), new_run=new_run,
                           progress=progress)

    def eval_reports(self) -> list[dict]:
        return self.store.query("SELECT run_id, judge_run, report, markdown, created_at FROM eval_reports ORDER BY created_at DESC")

    # -- training ------------------------------------------------------------------------
    def start_training(self, kind: str, *, config: dict | None = None, new_run: bool = False, num_processes: int = 1):
        """Build the snapshot the kind trains on, then launch (or resume) the job.
        Returns (run, process or None, runs_dir)."""
        from .training import default_config
        from .training.launcher import launch

        runs_dir = Path(self.settings.runs_dir).resolve()
        data_dir = runs_dir / "snapshots"
        cfg = default_config(kind)
        cfg.update(config or {})
        snapshot_hash = None
        if kind == "sft":
            snap = self.sft_snapshot()
            if not snap.records:
                raise ValueError("no SL revisions to train on: run `cai sl` first")
            path = write_records(snap.records, data_dir / f"sft-{snap.content_hash}.jsonl")
            from .labels.snapshots import register_snapshot

            register_snapshot(self.store, kind="sft", content_hash=snap.content_hash, path=path, records=len(snap.records))
            cfg.setdefault("data", str(path))
            snapshot_hash = snap.content_hash
            cfg.setdefault("model", self.resolve_model_path("base"))
        elif kind == "reward":
            path, snap = self.export_preferences(data_dir / "preferences.tmp.jsonl")
            if not snap.records:
                raise ValueError("no labelled comparisons to train on: run `cai pairs` and `cai judge` first")
            final = path.with_name(f"preferences-{snap.content_hash}.jsonl")
            path.replace(final)
            self.store.execute("UPDATE snapshots SET path = ? WHERE hash = ?", [str(final), snap.content_hash])
            cfg.setdefault("data", str(final))
            snapshot_hash = snap.content_hash
            cfg.setdefault("model", self.resolve_model_path("base"))
        else:
            pset = P.get_prompt_set(self.store, cfg.pop("prompt_set", "red-team"))
            prompts = [{"prompt": p.text} for p in P.prompts_of(self.store, pset.id)]
            body = json.dumps(prompts, sort_keys=True)
            snapshot_hash = hashlib.sha256(body.encode()).hexdigest()[:16]
            path = write_records(prompts, data_dir / f"prompts-{snapshot_hash}.jsonl")
            cfg.setdefault("prompts", str(path))
            cfg.setdefault("model", self.resolve_model_path("sft", fallback="base"))
            cfg.setdefault("reward_model", self.resolve_model_path("reward"))
        run, proc = launch(self.store, kind=kind, config=cfg, runs_dir=runs_dir, base_model=cfg["model"],
                           snapshot_hash=snapshot_hash, new_run=new_run, num_processes=num_processes)
        return run, proc, runs_dir

    def resolve_model_path(self, name: str, *, fallback: str | None = None) -> str:
        """A model folder for training: 'base' -> the embedded model's cached folder."""
        from .models import resolve_model

        try:
            resolved = self.resolve_model(name)
        except KeyError:
            if fallback is None:
                raise
            resolved = self.resolve_model(fallback)
        return str(resolve_model(resolved))

    def training_state(self, run_id: str):
        from .training.launcher import ingest

        return ingest(self.store, run_id, Path(self.settings.runs_dir).resolve())

    def cancel_training(self, run_id: str) -> bool:
        from .training.launcher import cancel

        return cancel(Path(self.settings.runs_dir).resolve() / run_id)

    def checkpoints(self) -> list[dict]:
        return self.store.query(
            "SELECT c.id, c.kind, c.run_id, c.path, c.base_model, c.snapshot_hash, c.created_at, "
            "s.overrides FROM checkpoints c LEFT JOIN snapshots s ON s.hash = c.snapshot_hash ORDER BY c.created_at")

    def metrics(self, run_id: str) -> list[dict]:
        return [json.loads(r["metrics"]) for r in self.store.query(
            "SELECT metrics FROM train_metrics WHERE run_id = ? ORDER BY step", [run_id])]

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
