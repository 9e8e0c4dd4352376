"""`cai export`: the training data of an explicit selection, in TRL's formats."""
from __future__ import annotations

import sys

from ..options import add_helpful_options, csv_list


def register(sub, common) -> None:
    ex = sub.add_parser("export", parents=[common], help="export training data", description="Export training data.")
    exs = ex.add_subparsers(dest="what", required=True, metavar="WHAT")
    sft = exs.add_parser("sft", parents=[common], help="(prompt, final revision) in TRL messages format")
    sft.add_argument("--out", required=True, help=".jsonl, .parquet or .csv")
    sft.add_argument("--sl-runs", "--run", dest="sl_runs", help="comma-separated SL runs (default: the latest finished one)")
    sft.add_argument("--include-flagged", action="store_true", help="keep revisions flagged as empty/repetitive/echo")
    add_helpful_options(sft)
    pref = exs.add_parser("preferences", parents=[common],
                          help="prompt/chosen/rejected (+ p_chosen, margin, comparison_id, source); human decisions win")
    pref.add_argument("--out", required=True, help=".jsonl, .parquet or .csv")
    pref.add_argument("--judge-runs", "--judge-run", dest="judge_runs",
                      help="comma-separated judge runs (default: the latest finished judge run over training pairs)")
    pref.add_argument("--min-confidence", type=float, default=0.0, help="drop AI labels with |2p-1| below this")
    ex.set_defaults(run=run)


def run(args, services) -> int:
    if args.what == "preferences":
        path, snap = services.export_preferences(args.out, judge_runs=csv_list(args.judge_runs),
                                                 min_confidence=args.min_confidence)
        print(f"{len(snap.records)} preference pairs from judge run(s) {', '.join(snap.selection['judge_runs'])} "
              f"({snap.overrides} with a human decision, {snap.skipped} ties/unparsed skipped, {snap.dropped} below "
              f"the confidence threshold dropped), snapshot {snap.content_hash}", file=sys.stderr)
    else:
        path, snap = services.export_sft(args.out, sl_runs=csv_list(args.sl_runs), include_flagged=args.include_flagged,
                                         helpful_runs=csv_list(args.helpful_runs), helpful_ratio=args.helpful_ratio)
        helpful = f" + {snap.helpful} helpful answers" if args.helpful_runs else ""
        print(f"{len(snap.records) - snap.helpful} records from SL run(s) {', '.join(snap.selection['sl_runs'])}{helpful}"
              + (f" ({snap.flagged} flagged left out)" if snap.flagged else "")
              + f", snapshot {snap.content_hash}", file=sys.stderr)
    print(path)
    return 0
