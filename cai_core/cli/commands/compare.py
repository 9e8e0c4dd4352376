"""`cai compare`: before/after on held-out prompts, judged pairwise, keyed by the checkpoints."""
from __future__ import annotations

import json
import sys

from ...types import DEFAULT_JUDGE_MODE, JUDGE_MODES
from ..options import csv_list, progress_bar


def register(sub, common) -> None:
    cm = sub.add_parser("compare", parents=[common],
                        help="before/after: the same held-out prompts through several models, judged pairwise -> win rates, refusal/evasion",
                        description="The same prompts through several models, judged pairwise in both orders. Prompts "
                                    "come from the set's held-out split; a model that (or whose ancestors) trained on "
                                    "any of them is refused unless --allow-trained-prompts (the report then says "
                                    "'not held out'). A run is keyed by the checkpoints the names resolve to, so "
                                    "after retraining the same command makes new answers.")
    cm.add_argument("--models", required=True, help="comma-separated: base, sft, rl, reward, a checkpoint id, a folder")
    cm.add_argument("--prompts", required=True, help="prompt set (e.g. red-team or benign)")
    cm.add_argument("--split", default="held-out", choices=["held-out", "train", "all"],
                    help="which prompts of the set (default held-out)")
    cm.add_argument("--constitution", default="harmless")
    cm.add_argument("--judge", help="judge model (default: --model)")
    cm.add_argument("--mode", choices=list(JUDGE_MODES), default=DEFAULT_JUDGE_MODE,
                    help=f"judge mode for the win rates (default {DEFAULT_JUDGE_MODE})")
    cm.add_argument("--principles", type=int, default=1)
    cm.add_argument("--limit", type=int, help="only K prompts")
    cm.add_argument("--offset", type=int, default=0, help="skip the split's first N prompts")
    cm.add_argument("--max-new-tokens", type=int, default=128)
    cm.add_argument("--seed", type=int, default=0)
    cm.add_argument("--allow-trained-prompts", action="store_true",
                    help="evaluate even on prompts a model trained on (the report is stamped 'not held out')")
    cm.add_argument("--json", action="store_true",
                    help="print the report as one JSON object (the last stdout line): held_out, n_prompts, models "
                         "[{name, checkpoint, overlap_with_training}], win_rates, response_rates")
    cm.add_argument("--new-run", action="store_true")
    cm.set_defaults(run=run)


def run(args, services) -> int:
    from ...backends.base import GenerationParams
    from ...runners.compare import CompareConfig
    from ...runners.judge import JudgeConfig

    cfg = CompareConfig(split=None if args.split == "all" else args.split, limit=args.limit, offset=args.offset,
                        seed=args.seed, allow_trained=args.allow_trained_prompts,
                        params=GenerationParams(max_new_tokens=args.max_new_tokens, repetition_penalty=1.1),
                        judge=JudgeConfig(mode=args.mode, principles=args.principles, seed=args.seed))
    update, close = progress_bar()
    try:
        run, report = services.compare(models=csv_list(args.models) or [], prompts=args.prompts,
                                       constitution=args.constitution, judge=args.judge, config=cfg,
                                       new_run=args.new_run, progress=update)
    finally:
        close()
    print(report.held_out_line(), file=sys.stderr)
    print(json.dumps(report.to_dict()) if args.json else report.to_markdown())
    print(f"run {run.id}", file=sys.stderr)
    return 0
