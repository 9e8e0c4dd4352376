"""`cai judge`: AI labels for comparisons (both A/B orders, k principles, one or more judges)."""
from __future__ import annotations

import sys

from ...types import COMPARISON_SOURCES, JUDGE_MODES
from ..options import csv_list, progress_bar


def register(sub, common) -> None:
    ju = sub.add_parser("judge", parents=[common], help="label comparisons with AI judges (both A/B orders, k principles, several judges)",
                        description="Label comparisons with AI judges. By default the comparisons made most recently "
                                    "(`cai pairs`); the evaluation pairs of `cai compare` only with --source compare.")
    ju.add_argument("--constitution", default="harmless", help="constitution whose preference questions are asked (default harmless)")
    ju.add_argument("--mode", choices=list(JUDGE_MODES), default="logprob", help="log-prob soft labels (default) or chain of thought, clamped")
    ju.add_argument("--principles", type=int, default=1, help="principles drawn per comparison (default 1)")
    ju.add_argument("--orders", choices=["both", "AB", "BA"], default="both", help="A/B orders judged (default both)")
    ju.add_argument("--judges", help="comma-separated judge models (default: --model); 'base', a checkpoint id, a folder")
    ju.add_argument("--source", choices=list(COMPARISON_SOURCES), help="all comparisons of this source")
    ju.add_argument("--pairs-run", help="only comparisons made by this run (default: the latest pairs)")
    ju.add_argument("--limit", type=int, help="judge only the first K comparisons")
    ju.add_argument("--seed", type=int, default=0)
    ju.add_argument("--clamp", default="0.4,0.6", help="CoT probability clamp LO,HI (default 0.4,0.6)")
    ju.add_argument("--new-run", action="store_true")
    ju.set_defaults(run=run)


def run(args, services) -> int:
    from ...backends.base import LogprobsUnsupported
    from ...runners.judge import JudgeConfig

    try:
        lo, hi = (float(x) for x in args.clamp.split(","))
    except ValueError:
        raise ValueError("--clamp takes LO,HI, e.g. 0.4,0.6") from None
    orders = ("AB", "BA") if args.orders == "both" else (args.orders,)
    cfg = JudgeConfig(mode=args.mode, principles=args.principles, orders=orders, seed=args.seed, clamp=(lo, hi),
                      source=args.source, pairs_run=args.pairs_run, limit=args.limit)
    update, close = progress_bar()
    try:
        res = services.judge(constitution=args.constitution, config=cfg, judges=csv_list(args.judges),
                             new_run=args.new_run, progress=update)
    except LogprobsUnsupported as e:
        raise ValueError(f"{e}; use --mode cot with this judge") from None
    finally:
        close()
    print(f"run {res.run.id}: {res.status}; {res.comparisons} comparisons, {res.verdicts} verdicts, "
          f"{res.unparsed} unparsed (queued for people)", file=sys.stderr)
    print(res.run.id)
    return 0 if res.status == "finished" else 3
