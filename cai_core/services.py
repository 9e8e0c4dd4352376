"""The ONE facade that the CLI, the app (views/) and the tests call: ``Services(settings,
jobs=None)``, built the same way everywhere (as Datasette builds one app object for its CLI,
server and tests). It owns the store and the loaded models (one load per model per process);
``jobs`` (a :class:`~cai_core.background.JobManager`) runs long work in the background for
the app, and is made on first use when not given.

Methods stay thin: the work lives in the stages, runners, labels and store modules.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import constitutions as C
from . import prompt_sets as P
from .backends import Backend, make_backend
from .background import JobManager
from .config import Settings
from .labels import agreement as agreement_mod
from .labels import audits, listing, queue, snapshots
from .labels import versions as V
from .lineage import checkpoint_named, default_judge_runs, default_sl_runs
from .runners.sl import Progress, SLConfig, SLResult, run_sl, sl_prompts_of, start_sl_run
from .store import Store
from .store import browse as browse_store
from .store import sl as sl_store
from .store import training as training_store
from .store import verdicts as verdict_store
from .store.runs import list_runs
from .types import RL_KINDS, Checkpoint, Constitution, TrainKind
from .service_eval import EvalLabelsMixin
from .service_gold import GoldMixin
from .service_jobs import JobsMixin
from .service_import import ImportMixin
from .service_export import DatasetExportMixin

if TYPE_CHECKING:
    from .runners.compare import CompareConfig
    from .runners.judge import JudgeConfig, JudgeResult
    from .runners.pairs import PairsConfig, PairsResult

__all__ = ["Services", "STAT_KINDS"]

STAT_KINDS = (
    "prompt_sets", "prompts", "generations", "critiques", "revisions", "comparisons",
    "verdicts", "unparsed_verdicts", "audits", "runs", "checkpoints", "failures",
)


class Services(GoldMixin, EvalLabelsMixin, JobsMixin, ImportMixin, DatasetExportMixin):
    def __init__(self, settings: Settings, jobs: JobManager | None = None, *, store: Store | None = None,
                 backend: Backend | None = None) -> None:
        self.settings = settings
        self._store = store
        self._jobs = jobs
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

    @property
    def jobs(self) -> JobManager:
        with self._lock:
            if self._jobs is None:
                self._jobs = JobManager()
            return self._jobs

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
                    max_retries=s.max_retries, logprob_mode=s.logprob_mode,
                )
            return self._backends[key]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- constitutions -------------------------------------------------------------------
    @property
    def user_constitution_dir(self) -> Path:
        """Edited constitutions live beside the database and shadow the shipped ones."""
        if self.settings.constitution_dirs:
            return Path(self.settings.constitution_dirs[0])
        db = Path(self.settings.db)
        return (db.parent if self.settings.db != ":memory:" else Path.cwd()) / "constitutions.d"

    def _constitution_dirs(self) -> list[Path]:
        return [self.user_constitution_dir, *map(Path, self.settings.constitution_dirs)]

    def constitution(self, name: str) -> Constitution:
        return C.find_constitution(name, self._constitution_dirs())

    def constitutions(self) -> dict[str, Path]:
        return C.list_constitutions(self._constitution_dirs())

    def constitution_source(self, name: str) -> str:
        c = self.constitution(name)
        V.record_version(self.store, c)
        return c.source

    def save_constitution(self, name: str, text: str) -> Constitution:
        return V.save_version(self.store, name, text, self.user_constitution_dir)

    def constitution_versions(self, name: str) -> list[dict]:
        self.constitution_source(name)  # the current file is always a listed version
        return V.versions_of(self.store, name)

    def diff_versions(self, old_version: str, new_version: str) -> str:
        return V.diff_versions(V.version_source(self.store, old_version), V.version_source(self.store, new_version))

    # -- prompts -------------------------------------------------------------------------
    def import_prompts(self, path: str | Path, *, name: str | None = None, column: str | None = None):
        return P.import_prompt_set(self.store, path, name=name, column=column)

    def prompt_set(self, name: str):
        """A prompt set by name (a shipped set is imported on first use)."""
        return P.get_prompt_set(self.store, name)

    def prompt_sets(self) -> list[dict]:
        return P.list_prompt_sets(self.store)

    def prompts(self, name: str, *, split: str | None = None, limit: int | None = None):
        return P.prompts_of(self.store, self.prompt_set(name).id, split=split, limit=limit)  # type: ignore[arg-type]

    def split_prompts(self, name: str, *, held_out: float = P.DEFAULT_HELD_OUT, seed: int = 0) -> dict[str, int]:
        """Split a prompt set anew; returns the prompts per split."""
        return P.resplit(self.store, self.prompt_set(name), held_out=held_out, seed=seed)

    def prompts_page(self, set_name: str, *, search: str = "", limit: int = 100, offset: int = 0) -> list[dict]:
        P.ensure_split(self.store, self.prompt_set(set_name))
        return browse_store.prompts_page(self.store, set_name, search=search, limit=limit, offset=offset)

    def add_prompt(self, set_name: str, text: str) -> int:
        """Add one prompt by hand (into a new or existing set). Returns how many were added."""
        return P.add_prompt(self.store, set_name, text)

    # -- SL phase ------------------------------------------------------------------------
    def sl(self, *, prompts: str, constitution: str, config: SLConfig, new_run: bool = False,
           progress: Progress | None = None, should_stop=None, model: str | None = None) -> SLResult:
        """Start or resume the SL run these settings define; a finished run is left as is."""
        cons = self.constitution(constitution)
        pset = self.prompt_set(prompts)
        backend = self.backend(model)
        run, created = start_sl_run(self.store, backend, cons, pset, config, new_run=new_run)
        if run.status == "finished" and not created:
            n = len(sl_prompts_of(self.store, run, config))
            return SLResult(run=run, created=False, status="finished", prompts=n, failed=0,
                            **sl_store.sl_counts(self.store, run.id))
        result = run_sl(self.store, backend, cons, run, config, progress=progress, should_stop=should_stop)
        return replace(result, created=created)

    def runs(self, kind: str | None = None) -> list[dict]:
        return list_runs(self.store, kind)

    def runs_table(self, kind: str | None = None) -> list[dict]:
        return browse_store.runs_table(self.store, kind)

    def sl_prompts(self, run_id: str, *, principle: str | None = None, flagged_only: bool = False) -> list[dict]:
        """Prompts of an SL run with how far each got and whether anything was flagged."""
        rows = sl_store.sl_prompts(self.store, run_id)
        if principle:
            rows = [r for r in rows if principle in (r["principles"] or "").split(", ")]
        return [r for r in rows if r["flagged"]] if flagged_only else rows

    def sl_chain(self, run_id: str, prompt_id: str) -> dict:
        return sl_store.sl_chain(self.store, run_id, prompt_id)

    def revision_search_counts(self, run_id: str) -> dict[str, int]:
        """An SL run's revision search: rounds, candidates, acceptable rounds, unacceptable finals."""
        return sl_store.search_counts(self.store, run_id)

    # -- models and lineage --------------------------------------------------------------
    def resolve_checkpoint(self, name: str) -> Checkpoint | None:
        """The checkpoint a model name means (None for the base model or a plain folder)."""
        return checkpoint_named(self.store, name)

    def resolve_model(self, name: str) -> str:
        """'base'/'embedded' -> embedded; a checkpoint id, run id or kind alias -> its folder;
        anything else is passed through (a folder, or a served model's name)."""
        if name in ("base", "embedded"):
            return "embedded"
        ckpt = self.resolve_checkpoint(name)
        return ckpt.path if ckpt else name

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

    def default_policy(self) -> str:
        """The model the RL phase samples from and improves: the latest SFT checkpoint, else
        the base model (the paper samples pairs from the SL model)."""
        return "sft" if training_store.latest_checkpoint(self.store, ("sft",)) else "base"

    # -- RL phase: pairs, judging, labels -----------------------------------------------
    def pairs(self, *, prompts: str, config: "PairsConfig", model: str | None = None, new_run: bool = False,
              progress: Progress | None = None, should_stop=None) -> "PairsResult":
        """Sample pairs (default model: the latest SFT checkpoint, else the base model)."""
        from .runners.pairs import run_pairs, start_pairs_run

        backend = self.backend(model or (self.default_policy() if self.settings.backend == "local" else None))
        run, created = start_pairs_run(self.store, backend, self.prompt_set(prompts), config, new_run=new_run)
        result = run_pairs(self.store, backend, run, config, progress=progress, should_stop=should_stop)
        return replace(result, created=created)

    def pairs_from_sl(self, sl_run_id: str) -> int:
        from .runners.pairs import pairs_from_sl

        return pairs_from_sl(self.store, sl_run_id)

    def judge(self, *, constitution: str, config: "JudgeConfig", judges: list[str] | None = None,
              new_run: bool = False, progress: Progress | None = None, should_stop=None) -> "JudgeResult":
        """Judge comparisons: those of ``config.pairs_run`` / ``config.source``, by default the
        pairs made most recently (never the evaluation pairs of ``compare`` unless named)."""
        from .runners.judge import run_judge, start_judge_run, with_default_selection

        cons = self.constitution(constitution)
        names = judges or [self.settings.model]
        config = with_default_selection(self.store, config)
        resolved = [self.resolve_model(n) if self.settings.backend == "local" else n for n in names]
        config = replace(config, judge_models=tuple(resolved))
        backends = [self.backend(j) for j in names]
        run, _ = start_judge_run(self.store, backends, cons, config, new_run=new_run)
        return run_judge(self.store, backends, cons, run, config, progress=progress, should_stop=should_stop)

    def judges_of(self, run) -> list[Backend]:
        """The judge backends of a judge run (its recorded models; older runs: the default model)."""
        models = run.config.get("judge_models") or [self.settings.model] * len(run.config.get("judges") or [1])
        return [self.backend(m) for m in models]

    def record_audit(self, comparison_id: str, *, author: str, action: str, reason: str | None = None,
                     verdict_id: str | None = None, runs: list[str] | None = None):
        return audits.record_audit(self.store, comparison_id, author=author, action=action, reason=reason,
                                   verdict_id=verdict_id, runs=runs)

    def effective_labels(self, **kw):
        return audits.effective_labels(self.store, **kw)

    def export_preferences(self, out: str | Path, *, judge_runs: list[str] | None = None, min_confidence: float = 0.0):
        """Write the preference snapshot of the selected judge runs (default: the latest judge
        run over training pairs) -> (path, snapshot)."""
        runs = judge_runs or default_judge_runs(self.store)
        snap = snapshots.preference_records(self.store, judge_runs=runs, min_confidence=min_confidence)
        path = snapshots.write_records(snap.records, out)
        return path, snap

    # -- compare -------------------------------------------------------------------------
    def compare_models(self, models: list[str]) -> list:
        """CompareModel entries: each name with what it resolved to (the compare run's key)."""
        from .runners.compare import compare_models

        return compare_models(models, checkpoint=self.resolve_checkpoint, resolve=self.resolve_model, load=self.backend,
                              local=self.settings.backend == "local")

    def compare(self, *, models: list[str], prompts: str, constitution: str = "harmless", judge: str | None = None,
                config: "CompareConfig | None" = None, new_run: bool = False, progress: Progress | None = None):
        """Answers of each model on the same held-out prompts, judged pairwise -> (run, EvalReport)."""
        from .runners.compare import CompareConfig, run_compare

        return run_compare(self.store, self.compare_models(models), self.backend(judge), self.constitution(constitution),
                           self.prompt_set(prompts), config or CompareConfig(), new_run=new_run, progress=progress)

    def latest_report(self) -> dict | None:
        """The newest evaluation report: {run_id, report (its dict), markdown}, or None."""
        return training_store.latest_report(self.store)

    def chat(self, models: list[str], prompt: str, *, max_new_tokens: int = 160) -> dict[str, str]:
        """The same prompt to several models (greedy, same settings) -> name -> answer."""
        from .stages.generate import side_by_side

        return side_by_side({name: (lambda name=name: self.backend(name)) for name in models}, prompt,
                            max_new_tokens=max_new_tokens)

    # -- training ------------------------------------------------------------------------
    def training_inputs(self, kind: TrainKind, selection: dict | None = None):
        """The snapshot a training kind trains on (see :func:`cai_core.training.data.inputs_for`)."""
        from .training.data import inputs_for

        return inputs_for(self.store, kind, selection, Path(self.settings.runs_dir).resolve() / "snapshots")

    def start_training(self, kind: TrainKind, *, config: dict | None = None, selection: dict | None = None,
                       new_run: bool = False, num_processes: int = 1):
        """Build the snapshot the kind trains on, then launch (or resume) the job. Returns
        (run, process or None when it had already finished, runs_dir, inputs)."""
        from .training import default_config
        from .training.launcher import launch

        runs_dir = Path(self.settings.runs_dir).resolve()
        inputs = self.training_inputs(kind, selection)
        cfg = default_config(kind)
        cfg.update(config or {})
        if kind in RL_KINDS:
            cfg.setdefault("prompts", str(inputs.path))
            cfg.setdefault("model", self.resolve_model_path("sft", fallback="base"))
            cfg.setdefault("reward_model", self.resolve_model_path("reward"))
        else:
            cfg.setdefault("data", str(inputs.path))
            # DPO is the RL phase without a reward model: its policy starts from SFT too
            cfg.setdefault("model", self.resolve_model_path("sft", fallback="base") if kind == "dpo"
                           else self.resolve_model_path("base"))
        run, proc = launch(self.store, kind=kind, config=cfg, runs_dir=runs_dir, base_model=cfg["model"],
                           snapshot_hash=inputs.snapshot_hash, new_run=new_run, num_processes=num_processes)
        return run, proc, runs_dir, inputs

    def training_state(self, run_id: str):
        from .training.launcher import ingest

        return ingest(self.store, run_id, Path(self.settings.runs_dir).resolve())

    def cancel_training(self, run_id: str) -> bool:
        from .training.launcher import cancel

        return cancel(Path(self.settings.runs_dir).resolve() / run_id)

    def training_log(self, run_id: str, lines: int = 40) -> str:
        from .training.launcher import log_tail

        return log_tail(Path(self.settings.runs_dir).resolve() / run_id, lines)

    def checkpoints(self) -> list[dict]:
        return training_store.checkpoints(self.store)

    def metrics(self, run_id: str) -> list[dict]:
        return training_store.metric_rows(self.store, run_id)

    # -- browsing, audit and agreement ---------------------------------------------------
    def comparisons_page(self, **kw) -> list[dict]:
        return listing.comparisons_page(self.store, **kw)

    def comparison_detail(self, comparison_id: str) -> dict:
        return listing.comparison_detail(self.store, comparison_id)

    def principle_ids(self) -> list[str]:
        return verdict_store.principle_ids(self.store)

    def judge_ids(self) -> list[str]:
        return verdict_store.judge_ids(self.store)

    def audit_queue(self, **kw):
        return queue.audit_queue(self.store, **kw)

    def standing_audits(self, *, author: str | None = None) -> list[dict]:
        """Audit actions still standing after undos, oldest first."""
        return audits.standing_audits(self.store, author=author)

    def agreement(self, **kw):
        return agreement_mod.agreement(self.store, **kw)

    def label_counts(self, bucket: str = "hour"):
        return agreement_mod.label_counts_over_time(self.store, bucket=bucket)  # type: ignore[arg-type]

    # -- export and stats ----------------------------------------------------------------
    def sft_snapshot(self, *, sl_runs: list[str] | None = None, include_flagged: bool = False,
                     helpful_runs: list[str] | None = None, helpful_ratio: float = 1.0):
        return snapshots.sft_records(self.store, sl_runs=sl_runs or default_sl_runs(self.store),
                                     include_flagged=include_flagged, helpful_runs=helpful_runs or (),
                                     helpful_ratio=helpful_ratio)

    def export_sft(self, out: str | Path, *, sl_runs: list[str] | None = None, include_flagged: bool = False,
                   helpful_runs: list[str] | None = None, helpful_ratio: float = 1.0):
        snap = self.sft_snapshot(sl_runs=sl_runs, include_flagged=include_flagged, helpful_runs=helpful_runs,
                                 helpful_ratio=helpful_ratio)
        return snapshots.write_records(snap.records, out), snap

    def stats(self) -> dict[str, int]:
        out = browse_store.record_counts(self.store, tuple(k for k in STAT_KINDS if k != "unparsed_verdicts"))
        return {k: out[k] for k in (*STAT_KINDS, "flagged_outputs")}

    def what_if_plan(self, name: str, draft_text: str, *, principle_ids: list[str] | None = None, sample: int = 8):
        """(draft, plans): what a what-if of this draft would re-judge."""
        draft = C.parse_constitution(draft_text, name=name, where="draft")
        try:
            saved = self.constitution(name)
        except Exception:
            saved = None
        return draft, V.plan_what_if(self.store, draft, saved=saved, principle_ids=principle_ids, sample=sample)

    def what_if(self, name: str, draft_text: str, *, principle_ids: list[str] | None = None, sample: int = 8,
                progress: Progress | None = None, should_stop=None) -> tuple[str, list[Any]]:
        """Re-judge stored comparisons with a draft (same judge configuration as their verdicts,
        old text vs new) -> (what-if run id, rows). Long: the app runs it as a job."""
        draft, plans = self.what_if_plan(name, draft_text, principle_ids=principle_ids, sample=sample)
        return V.run_what_if(self.store, draft, plans, self.judges_of, sample=sample, progress=progress,
                             should_stop=should_stop)
