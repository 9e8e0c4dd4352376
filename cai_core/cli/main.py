"""`cai`: the command-line face of Constitution Lab (same services as the app).

Global options (--db, --model, --backend, --base-url, ...) may come before or after the
subcommand. Results go to stdout (ids, JSON); progress and messages go to stderr.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

from .parser import bench_modules, build_parser

__all__ = ["main", "build_parser"]

def _settings(args):
    from ..config import load_settings

    keys = ("db", "model", "backend", "base_url", "api_key_env", "device", "batch_size", "timeout", "max_retries")
    return load_settings(getattr(args, "settings", None), **{k: getattr(args, k, None) for k in keys})


def _progress_bar():
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, what: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True)
        bar.set_description(what)
        bar.n = done
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def _err(msg: str) -> int:
    print(f"cai: error: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    from ..services import Services

    if args.command == "constitutions" and args.action == "validate":
        from ..constitutions import ConstitutionError, load_constitution

        for f in args.files:
            try:
                c = load_constitution(f)
            except (ConstitutionError, OSError) as e:
                print(f"{e}", file=sys.stderr)
                return 1
            print(f"{f}: ok ({len(c.principles)} principles, {len(c.examples)} examples, version {c.version})")
        return 0
    if args.command == "model":
        from ..models import embedded_model_dir

        print(embedded_model_dir())
        return 0
    if args.command == "bench":
        return _bench(args)
    if args.command == "app":
        from app import main as app_main

        argv = ["--host", args.host] + (["--port", str(args.port)] if args.port else [])
        argv += ["--db", getattr(args, "db", None) or _settings(args).db]
        return app_main(argv) or 0

    services = Services(_settings(args))
    try:
        return _dispatch(args, services)
    finally:
        services.close()


def _dispatch(args, services) -> int:
    cmd = args.command
    if cmd == "prompts":
        if args.action == "import":
            ps, added, dup = services.import_prompts(args.file, name=args.name, column=args.column)
            print(f"{ps.name}: {added} prompts added, {dup} already present or duplicated", file=sys.stderr)
            print(ps.name)
        elif args.action == "list":
            for r in services.prompt_sets():
                print(f"{r['name']}\t{r['prompts']}\t{r['source']}")
        elif args.action == "show":
            from ..prompt_sets import get_prompt_set, prompts_of

            ps = get_prompt_set(services.store, args.name)
            for p in prompts_of(services.store, ps.id, limit=args.limit):
                print(f"{p.position}\t{p.category or ''}\t{p.text}")
        return 0
    if cmd == "constitutions":
        if args.action == "list":
            for name, path in services.constitutions().items():
                try:
                    c = services.constitution(name)
                    print(f"{name}\t{c.version}\t{len(c.principles)} principles\t{path}")
                except Exception as e:  # a broken file must not hide the others
                    print(f"{name}\tINVALID\t{e}")
        else:
            c = services.constitution(args.name)
            print(f"{c.name} ({c.version}): {c.title}\n{c.description}\n")
            for p in c.principles:
                print(f"[{p.id}]\n  critique:   {p.critique}\n  revision:   {p.revision}\n  preference: {p.preference}")
        return 0
    if cmd == "sl":
        from ..runners.sl import SLConfig

        cfg = SLConfig(rounds=args.rounds, cot=args.cot, few_shot=args.few_shot, limit=args.limit, seed=args.seed, chunk=args.chunk)
        for k in ("answer", "critique", "revision"):
            p = getattr(cfg, k)
            if args.max_new_tokens and k != "critique":
                p = replace(p, max_new_tokens=args.max_new_tokens)
            if args.temperature:
                p = replace(p, temperature=args.temperature)
            cfg = replace(cfg, **{k: p})
        update, close = _progress_bar()
        try:
            result = services.sl(prompts=args.prompts, constitution=args.constitution, config=cfg,
                                 new_run=args.new_run, progress=update)
        except KeyboardInterrupt:
            close()
            print("\ninterrupted: rerun the same command to resume", file=sys.stderr)
            return 130
        close()
        print(
            f"run {result.run.id}: {result.status}; {result.prompts} prompts, {result.generations} answers, "
            f"{result.critiques} critiques, {result.revisions} revisions"
            + (f", {result.failed} failed (rerun to retry)" if result.failed else ""),
            file=sys.stderr,
        )
        print(result.run.id)
        return 0 if result.status == "finished" else 3
    if cmd == "pairs":
        return _pairs(args, services)
    if cmd == "judge":
        return _judge(args, services)
    if cmd == "train":
        return _train(args, services)
    if cmd == "compare":
        from ..backends.base import GenerationParams
        from ..runners.compare import CompareConfig
        from ..runners.judge import JudgeConfig

        cfg = CompareConfig(limit=args.limit, offset=args.offset, seed=args.seed,
                            params=GenerationParams(max_new_tokens=args.max_new_tokens, repetition_penalty=1.1),
                            judge=JudgeConfig(mode=args.mode, principles=args.principles, seed=args.seed))
        update, close = _progress_bar()
        try:
            run, report = services.compare(models=[m.strip() for m in args.models.split(",")], prompts=args.prompts,
                                           constitution=args.constitution, judge=args.judge, config=cfg,
                                           new_run=args.new_run, progress=update)
        finally:
            close()
        print(json.dumps(report.to_dict()) if args.json else report.to_markdown())
        print(f"run {run.id}", file=sys.stderr)
        return 0
    if cmd == "checkpoints":
        for c in services.checkpoints():
            print(f"{c['id']}\t{c['kind']}\t{c['run_id']}\t{c['snapshot_hash'] or ''}\t{c['path']}")
        return 0
    if cmd == "runs":
        for r in services.runs(args.kind):
            print(f"{r['id']}\t{r['kind']}\t{r['status']}\t{r['model']}\t{r['created_at']:%Y-%m-%d %H:%M}")
        return 0
    if cmd == "export":
        if args.what == "preferences":
            path, snap = services.export_preferences(args.out, judge_run_id=args.judge_run, source=args.source,
                                                     min_confidence=args.min_confidence)
            print(f"{len(snap.records)} preference pairs ({snap.overrides} with a human decision, {snap.skipped} "
                  f"ties/unparsed skipped), snapshot {snap.content_hash}", file=sys.stderr)
        else:
            path, snap = services.export_sft(args.out, run_id=args.run, include_flagged=args.include_flagged)
            print(f"{len(snap.records)} records, snapshot {snap.content_hash}", file=sys.stderr)
        print(path)
        return 0
    if cmd == "stats":
        stats = services.stats()
        if args.json:
            print(json.dumps(stats))
        else:
            for k, v in stats.items():
                print(f"{k:20} {v}")
        return 0
    raise AssertionError(cmd)


def _bench(args) -> int:
    bench = bench_modules()
    if bench is None:
        raise FileNotFoundError("`cai bench` needs a source checkout: no bench/ folder beside cai_core/")
    return {"generation": bench[0], "store": bench[1], "attention": bench[2]}[args.action].main(args)


def _pairs(args, services) -> int:
    if args.from_sl:
        n = services.pairs_from_sl(args.from_sl)
        print(f"{n} comparisons (first answer vs final revision) from {args.from_sl}", file=sys.stderr)
        print(args.from_sl)
        return 0
    if not args.prompts:
        raise ValueError("give --prompts SET (or --from-sl RUN)")
    from ..backends.base import GenerationParams
    from ..runners.pairs import PairsConfig

    cfg = PairsConfig(n=args.n, limit=args.limit, seed=args.seed, params=GenerationParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=0.95, repetition_penalty=1.1))
    update, close = _progress_bar()
    try:
        res = services.pairs(prompts=args.prompts, config=cfg, model=getattr(args, "model", None),
                             new_run=args.new_run, progress=update)
    finally:
        close()
    print(f"run {res.run.id}: {res.status}; {res.prompts} prompts, {res.comparisons} comparisons"
          + (f", {res.failed} failed (rerun to retry)" if res.failed else ""), file=sys.stderr)
    print(res.run.id)
    return 0 if res.status == "finished" else 3


def _judge(args, services) -> int:
    from ..runners.judge import JudgeConfig

    try:
        lo, hi = (float(x) for x in args.clamp.split(","))
    except ValueError:
        raise ValueError("--clamp takes LO,HI, e.g. 0.4,0.6") from None
    orders = ("AB", "BA") if args.orders == "both" else (args.orders,)
    cfg = JudgeConfig(mode=args.mode, principles=args.principles, orders=orders, seed=args.seed, clamp=(lo, hi),
                      source=args.source, pairs_run=args.pairs_run, limit=args.limit)
    judges = [j.strip() for j in args.judges.split(",")] if args.judges else None
    update, close = _progress_bar()
    try:
        res = services.judge(constitution=args.constitution, config=cfg, judges=judges, new_run=args.new_run, progress=update)
    except Exception as e:
        from ..backends.base import LogprobsUnsupported

        if isinstance(e, LogprobsUnsupported):
            raise ValueError(f"{e}; use --mode cot with this judge") from None
        raise
    finally:
        close()
    print(f"run {res.run.id}: {res.status}; {res.comparisons} comparisons, {res.verdicts} verdicts, "
          f"{res.unparsed} unparsed (queued for people)", file=sys.stderr)
    print(res.run.id)
    return 0 if res.status == "finished" else 3


def _train(args, services) -> int:
    cfg: dict = {}
    if args.train_config:
        cfg.update(json.loads(open(args.train_config, encoding="utf-8").read()))
    if args.max_steps:
        cfg["max_steps"] = args.max_steps
    if args.base:
        cfg["model"] = services.resolve_model_path(args.base)
    if args.kind in ("ppo", "rloo", "grpo"):
        if args.reward_model:
            cfg["reward_model"] = services.resolve_model_path(args.reward_model)
        if args.prompts:
            cfg["prompt_set"] = args.prompts
    if args.soft_labels:
        cfg["soft_labels"] = True
    if args.lora:
        cfg["lora"] = True
    run, proc, runs_dir = services.start_training(args.kind, config=cfg, new_run=args.new_run,
                                                  num_processes=args.num_processes)
    print(f"run {run.id}: folder {runs_dir / run.id}", file=sys.stderr)
    if args.detach and proc is not None:
        print(run.id)
        return 0
    from ..training.launcher import wait

    update, close = _progress_bar()
    try:
        state = wait(services.store, run, proc, runs_dir, progress=update)
    except KeyboardInterrupt:
        close()
        services.cancel_training(run.id)
        if proc is not None:
            proc.wait(timeout=120)
        services.training_state(run.id)
        print("\ncancelled: the job saved a checkpoint; re-issue the command to resume", file=sys.stderr)
        return 130
    close()
    print(f"run {run.id}: {state.status} at step {state.step}"
          + (f"; checkpoint {state.checkpoint_id}" if state.checkpoint_id else "")
          + (f"; error: {state.error}" if state.error else ""), file=sys.stderr)
    print(run.id)
    return 0 if state.status == "finished" else 3


def main(argv: list[str] | None = None) -> int:
    from ..constitutions import ConstitutionError
    from ..models import ModelNotFound
    from ..prompt_sets import PromptFileError
    from ..store import StoreLocked

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ConstitutionError, PromptFileError, StoreLocked, ModelNotFound, FileNotFoundError) as e:
        return _err(str(e))
    except KeyError as e:
        return _err(e.args[0] if e.args else str(e))
    except ValueError as e:
        return _err(str(e))


if __name__ == "__main__":
    sys.exit(main())
