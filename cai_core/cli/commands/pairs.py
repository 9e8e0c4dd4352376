"""`cai pairs`: answer pairs to judge, sampled from the policy (by default the latest SFT model)."""
from __future__ import annotations

import sys

from ..options import progress_bar


def register(sub, common) -> None:
    pa = sub.add_parser("pairs", parents=[common], help="sample two (or n) answers per prompt from a model -> comparisons to judge",
                        description="Sample two (or n) answers per prompt of a set's train split -> comparisons to judge. "
                                    "The model defaults to the latest SFT checkpoint (the paper's RL phase samples "
                                    "from the SL model), else the base model; --model names another.")
    pa.add_argument("--prompts", help="prompt set name (e.g. red-team)")
    pa.add_argument("--from-sl", metavar="RUN", help="instead: pair an SL run's first answers with their final revisions")
    pa.add_argument("--split", default="train", choices=["train", "held-out", "all"], help="which prompts (default train)")
    pa.add_argument("--n", type=int, default=2, help="samples per prompt (default 2)")
    pa.add_argument("--limit", type=int, help="use only the first K prompts (of the split)")
    pa.add_argument("--seed", type=int, default=0, help="sample k uses seed + k (default 0)")
    pa.add_argument("--temperature", type=float, default=0.9, help="sampling temperature (default 0.9)")
    pa.add_argument("--max-new-tokens", type=int, default=128)
    pa.add_argument("--new-run", action="store_true")
    pa.set_defaults(run=run)


def run(args, services) -> int:
    if args.from_sl:
        n = services.pairs_from_sl(args.from_sl)
        print(f"{n} comparisons (first answer vs final revision) from {args.from_sl}", file=sys.stderr)
        print(args.from_sl)
        return 0
    if not args.prompts:
        raise ValueError("give --prompts SET (or --from-sl RUN)")
    from ...backends.base import GenerationParams
    from ...runners.pairs import PairsConfig

    cfg = PairsConfig(n=args.n, limit=args.limit, seed=args.seed, split=None if args.split == "all" else args.split,
                      params=GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                              top_p=0.95, repetition_penalty=1.1))
    update, close = progress_bar()
    try:
        res = services.pairs(prompts=args.prompts, config=cfg, model=getattr(args, "model", None),
                             new_run=args.new_run, progress=update)
    finally:
        close()
    print(f"run {res.run.id}: {res.status}; {res.prompts} prompts, {res.comparisons} comparisons sampled from "
          f"{res.run.model}" + (f", {res.failed} failed (rerun to retry)" if res.failed else ""), file=sys.stderr)
    print(res.run.id)
    return 0 if res.status == "finished" else 3
