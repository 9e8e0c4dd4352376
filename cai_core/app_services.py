"""The services the app adds to the CLI's: background jobs, read-side browsing, constitution
versions and what-if, audit analytics, and side-by-side chat. Views call only these."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .labels import browse
from .labels import versions as V
from .background import JobManager, Reporter
from .services import Services

__all__ = ["AppServices"]


class AppServices(Services):
    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.jobs = JobManager()
        self._write_lock = threading.Lock()

    # -- folders ---------------------------------------------------------------------------
    @property
    def user_constitution_dir(self) -> Path:
        """Edited constitutions live beside the database and shadow the shipped ones."""
        if self.settings.constitution_dirs:
            return Path(self.settings.constitution_dirs[0])
        db = Path(self.settings.db)
        return (db.parent if self.settings.db != ":memory:" else Path.cwd()) / "constitutions.d"

    def constitution(self, name: str):
        from . import constitutions as C

        return C.find_constitution(name, [self.user_constitution_dir, *map(Path, self.settings.constitution_dirs)])

    def constitutions(self) -> dict[str, Path]:
        from . import constitutions as C

        return C.list_constitutions([self.user_constitution_dir, *map(Path, self.settings.constitution_dirs)])

    # -- background jobs -----------------------------------------------------------------
    def job_views(self) -> list[dict]:
        return [j.view() for j in self.jobs.list()]

    def job_view(self, job_id: str | None) -> dict | None:
        job = self.jobs.get(job_id) if job_id else None
        return job.view() if job else None

    def cancel_job(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None:
            return False
        return self.jobs.cancel(job_id)

    def submit_sl(self, *, prompts: str, constitution: str, config, model: str | None = None, new_run: bool = False) -> str:
        # Validate on the request thread so bad input is reported at once, not in a job log.
        self.constitution(constitution)
        from .prompt_sets import get_prompt_set

        get_prompt_set(self.store, prompts)

        def work(rep: Reporter):
            rep.log(f"loading model {model or self.settings.model}")
            res = self.sl(prompts=prompts, constitution=constitution, config=config, new_run=new_run, model=model,
                          progress=rep.progress, should_stop=rep.should_stop)
            rep.set_run_id(res.run.id)
            rep.log(f"run {res.run.id}: {res.status}; {res.generations} answers, {res.critiques} critiques, "
                    f"{res.revisions} revisions")
            return res.run.id

        return self.jobs.submit("sl", f"SL: {prompts} x {constitution}, {config.rounds} rounds", work)

    def submit_judge(self, *, constitution: str, config, judges: list[str] | None = None) -> str:
        self.constitution(constitution)

        def work(rep: Reporter):
            res = self.judge(constitution=constitution, config=config, judges=judges, progress=rep.progress,
                             should_stop=rep.should_stop)
            rep.set_run_id(res.run.id)
            rep.log(f"{res.verdicts} verdicts, {res.unparsed} unparsed")
            return res.run.id

        return self.jobs.submit("judge", f"judge with {constitution} ({config.mode})", work)

    def submit_pairs(self, *, prompts: str, config, model: str | None = None) -> str:
        def work(rep: Reporter):
            res = self.pairs(prompts=prompts, config=config, model=model, progress=rep.progress, should_stop=rep.should_stop)
            rep.set_run_id(res.run.id)
            rep.log(f"{res.comparisons} comparisons")
            return res.run.id

        return self.jobs.submit("pairs", f"pairs: {prompts} from {model or self.settings.model}", work)

    def submit_compare(self, *, models: list[str], prompts: str, constitution: str, config) -> str:
        if len(models) < 2:
            raise ValueError("compare needs at least two models")

        def work(rep: Reporter):
            run, report = self.compare(models=models, prompts=prompts, constitution=constitution, config=config,
                                       progress=rep.progress)
            rep.set_run_id(run.id)
            return run.id

        return self.jobs.submit("compare", f"compare {', '.join(models)} on {prompts}", work)

    def submit_training(self, kind: str, *, config: dict | None = None, new_run: bool = False) -> str:
        from .training.launcher import wait

        run, proc, runs_dir = self.start_training(kind, config=config, new_run=new_run)

        def work(rep: Reporter):
            rep.set_run_id(run.id)
            rep.log(f"run {run.id} in {runs_dir / run.id}")
            cancelled = False

            def progress(done, total, what):
                nonlocal cancelled
                rep.progress(done, total, what)
                if rep.should_stop() and not cancelled:
                    cancelled = True
                    self.cancel_training(run.id)
                    rep.log("SIGTERM sent: the job saves a checkpoint and stops")

            state = wait(self.store, run, proc, runs_dir, progress=progress, poll=1.0)
            rep.log(f"{state.status} at step {state.step}" + (f": {state.error}" if state.error else ""))
            if state.status == "failed":
                raise RuntimeError(state.error or "training failed; see the log")
            return run.id

        job_id = self.jobs.submit("train", f"train {kind}", work)
        self.jobs.get(job_id).run_id = run.id  # known before the worker starts: the UI shows it at once
        return job_id

    def training_log(self, run_id: str, lines: int = 40) -> str:
        path = Path(self.settings.runs_dir).resolve() / run_id / "log.txt"
        if not path.is_file():
            return ""
        text = path.read_bytes()[-20000:].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- browsing ----------------------------------------------------------------------------
    def runs_table(self, kind: str | None = None) -> list[dict]:
        return browse.runs_table(self.store, kind)

    def prompts_page(self, set_name: str, *, search: str = "", limit: int = 100, offset: int = 0) -> list[dict]:
        return browse.prompts_page(self.store, set_name, search=search, limit=limit, offset=offset)

    def add_prompt(self, set_name: str, text: str) -> int:
        """Add one prompt by hand (into a new or existing set). Returns how many were added."""
        import tempfile

        text = (text or "").strip()
        if not text:
            raise ValueError("the prompt is empty")
        if not set_name or not set_name.strip():
            raise ValueError("choose or name a prompt set")
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
            f.write(json.dumps({"prompt": text}) + "\n")
        try:
            _, added, _ = self.import_prompts(f.name, name=set_name.strip())
        finally:
            Path(f.name).unlink(missing_ok=True)
        return added

    def sl_prompts(self, run_id: str, **kw) -> list[dict]:
        return browse.sl_prompts(self.store, run_id, **kw)

    def sl_chain(self, run_id: str, prompt_id: str) -> dict:
        return browse.sl_chain(self.store, run_id, prompt_id)

    def comparisons_page(self, **kw) -> list[dict]:
        return browse.comparisons_page(self.store, **kw)

    def comparison_detail(self, comparison_id: str) -> dict:
        return browse.comparison_detail(self.store, comparison_id)

    def principle_ids(self) -> list[str]:
        return [r["principle_id"] for r in self.store.query("SELECT DISTINCT principle_id FROM verdicts ORDER BY 1")]

    def judge_ids(self) -> list[str]:
        return [r["judge"] for r in self.store.query("SELECT DISTINCT judge FROM verdicts ORDER BY 1")]

    # -- constitutions: versions, diff, what-if -----------------------------------------------
    def constitution_source(self, name: str) -> str:
        c = self.constitution(name)
        V.record_version(self.store, c)
        return c.source

    def save_constitution(self, name: str, text: str):
        return V.save_version(self.store, name, text, self.user_constitution_dir)

    def constitution_versions(self, name: str) -> list[dict]:
        self.constitution_source(name)  # the current file is always a listed version
        return V.versions_of(self.store, name)

    def diff_versions(self, old_version: str, new_version: str) -> str:
        return V.diff_versions(V.version_source(self.store, old_version), V.version_source(self.store, new_version))

    def what_if(self, name: str, draft_text: str, *, principle_ids: list[str] | None = None, sample: int = 8,
                judge: str | None = None):
        from .constitutions import parse_constitution

        draft = parse_constitution(draft_text, name=name, where="draft")
        try:
            saved = self.constitution(name)
        except Exception:
            saved = None
        return V.what_if(self.store, self.backend(judge), draft, saved=saved, principle_ids=principle_ids, sample=sample)

    # -- audit ---------------------------------------------------------------------------------
    def audit_queue(self, **kw):
        from .labels.queue import audit_queue

        return audit_queue(self.store, **kw)

    def standing_audits(self, *, author: str | None = None) -> list[dict]:
        """Audit actions still standing after undos, oldest first."""
        from .labels.queue import standing_audits

        return standing_audits(self.store, author=author)

    def agreement(self, **kw):
        from .labels.agreement import agreement

        return agreement(self.store, **kw)

    def label_counts(self, bucket: str = "hour"):
        from .labels.agreement import label_counts_over_time

        return label_counts_over_time(self.store, bucket=bucket)

    # -- compare -------------------------------------------------------------------------------
    def chat(self, models: list[str], prompt: str, *, max_new_tokens: int = 160) -> dict[str, str]:
        """The same prompt to several models (greedy, same settings) -> name -> answer."""
        from .backends.base import GenerationParams, Request, chat

        prompt = (prompt or "").strip()
        if not prompt:
            raise ValueError("type a prompt first")
        req = Request(chat(("user", prompt)), GenerationParams(max_new_tokens=int(max_new_tokens), repetition_penalty=1.1))
        out: dict[str, str] = {}
        for name in models:
            c = self.backend(name).generate([req])[0]
            out[name] = c.text if c.ok else f"[error: {c.error}]"
        return out

    def latest_report(self) -> dict | None:
        rows = self.eval_reports()
        if not rows:
            return None
        r = rows[0]
        return {"run_id": r["run_id"], "report": json.loads(r["report"]), "markdown": r["markdown"]}
