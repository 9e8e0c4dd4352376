"""The facade's background work (part of :class:`~cai_core.services.Services`): long work
submitted as jobs with progress, a log and cancel, for the app. Input is validated on the
request thread, so bad input is reported at once, not in a job log."""
from __future__ import annotations

from typing import Any

from .background import Reporter

__all__ = ["JobsMixin"]


class JobsMixin:
    """Job submission and viewing; ``self`` is the Services facade."""

    def job_view(self: Any, job_id: str | None) -> dict | None:
        job = self.jobs.get(job_id) if job_id else None
        return job.view() if job else None

    def job_result(self: Any, job_id: str) -> Any:
        job = self.jobs.get(job_id)
        return job.result if job else None

    def cancel_job(self: Any, job_id: str) -> bool:
        return self.jobs.get(job_id) is not None and self.jobs.cancel(job_id)

    def submit_sl(self: Any, *, prompts: str, constitution: str, config, model: str | None = None,
                  new_run: bool = False) -> str:
        self.constitution(constitution)
        self.prompt_set(prompts)

        def work(rep: Reporter):
            rep.log(f"loading model {model or self.settings.model}")
            res = self.sl(prompts=prompts, constitution=constitution, config=config, new_run=new_run, model=model,
                          progress=rep.progress, should_stop=rep.should_stop)
            rep.set_run_id(res.run.id)
            rep.log(f"run {res.run.id}: {res.status}; {res.generations} answers, {res.critiques} critiques, "
                    f"{res.revisions} revisions")
            return res.run.id

        return self.jobs.submit("sl", f"SL: {prompts} x {constitution}, {config.rounds} rounds", work)

    def submit_judge(self: Any, *, constitution: str, config, judges: list[str] | None = None) -> str:
        self.constitution(constitution)

        def work(rep: Reporter):
            res = self.judge(constitution=constitution, config=config, judges=judges, progress=rep.progress,
                             should_stop=rep.should_stop)
            rep.set_run_id(res.run.id)
            rep.log(f"{res.verdicts} verdicts, {res.unparsed} unparsed")
            return res.run.id

        return self.jobs.submit("judge", f"judge with {constitution} ({config.mode})", work)

    def submit_validate(self: Any, *, gold: str, config, constitution: str = "harmless",
                        judges: list[str] | None = None) -> str:
        self.constitution(constitution)

        def work(rep: Reporter):
            results = self.validate_judge(gold=gold, config=config, constitution=constitution, judges=judges,
                                          progress=rep.progress, should_stop=rep.should_stop)
            for r in results:
                m = r.metrics
                rep.set_run_id(r.run.id)
                acc = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.1%}"
                rep.log(f"{r.judge} ({r.mode}): {r.status}; accuracy {acc} on {m['n']} pairs")
            return [r.run.id for r in results]

        modes = ", ".join(config.modes)
        return self.jobs.submit("validate", f"validate judges ({modes}) on {gold}", work)

    def submit_pairs(self: Any, *, prompts: str, config, model: str | None = None) -> str:
        self.prompt_set(prompts)

        def work(rep: Reporter):
            res = self.pairs(prompts=prompts, config=config, model=model, progress=rep.progress,
                             should_stop=rep.should_stop)
            rep.set_run_id(res.run.id)
            rep.log(f"{res.comparisons} comparisons from {res.run.model}")
            return res.run.id

        return self.jobs.submit("pairs", f"pairs: {prompts} from {model or 'the latest SFT model (else base)'}", work)

    def submit_compare(self: Any, *, models: list[str], prompts: str, constitution: str, config) -> str:
        if len(models) < 2:
            raise ValueError("compare needs at least two models")
        self.compare_models(models)  # unknown names fail here, not in the job
        self.prompt_set(prompts)

        def work(rep: Reporter):
            run, report = self.compare(models=models, prompts=prompts, constitution=constitution, config=config,
                                       progress=rep.progress)
            rep.set_run_id(run.id)
            rep.log(report.held_out_line())
            return run.id

        return self.jobs.submit("compare", f"compare {', '.join(models)} on {prompts}", work)

    def submit_what_if(self: Any, name: str, draft_text: str, *, principle_ids: list[str] | None = None,
                       sample: int = 8) -> str:
        _, plans = self.what_if_plan(name, draft_text, principle_ids=principle_ids, sample=sample)
        if not plans:
            raise ValueError("nothing to re-judge: no stored verdicts use the changed principles (edit a principle's "
                             "preference question, or name principle ids)")

        def work(rep: Reporter):
            run_id, rows = self.what_if(name, draft_text, principle_ids=principle_ids, sample=sample,
                                        progress=rep.progress, should_stop=rep.should_stop)
            rep.set_run_id(run_id)
            rep.log(f"{sum(r.flipped for r in rows)} of {len(rows)} labels flip under the draft")
            return rows

        return self.jobs.submit("what-if", f"what-if: {name} draft, {len(plans)} principle(s)", work)

    def submit_training(self: Any, kind: str, *, config: dict | None = None, selection: dict | None = None,
                        new_run: bool = False) -> str:
        from .training.launcher import wait

        run, proc, runs_dir, inputs = self.start_training(kind, config=config, selection=selection, new_run=new_run)

        def work(rep: Reporter):
            rep.set_run_id(run.id)
            rep.log(inputs.description)
            for w in inputs.warnings:
                rep.log(f"WARNING: {w}")
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
