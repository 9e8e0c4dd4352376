"""`cai export`: the training data of an explicit selection, in TRL's formats."""
from __future__ import annotations

import argparse
import sys

from ..options import add_helpful_options, csv_list


CAI_DATASET_HELP = """\
Export the selected SL runs and judge runs in the shape of HuggingFaceH4/cai-conversation-harmless:
a datasets.DatasetDict in DIR with the splits train_sft, train_prefs, test_sft, test_prefs, each with
the columns init_prompt, init_response, critic_prompt, critic_response, revision_prompt,
revision_response, prompt, messages, chosen, rejected.

  *_sft    one row per record of the SFT snapshot of the SL runs: first answer, the final round's
           critique and revision; messages = chosen = [prompt, final revision], rejected = [prompt,
           first answer]
  *_prefs  one row per pair of the preference snapshot of the judge runs (people's decisions win);
           messages = chosen; the SL columns are empty unless the pair came from `cai pairs --from-sl`
  test_*   rows whose prompt is in its set's held-out split (`cai prompts list`); train_*: the rest

DIR/selection.json records the selection, the snapshot hashes, a content hash and each row's source
record (revision / comparison id); the same selection gives the same files.

  ds = datasets.load_from_disk(DIR)        # --format parquet: DIR/<split>.parquet
  SFTTrainer(..., train_dataset=ds["train_sft"].select_columns(["messages"]))
  DPOTrainer(..., train_dataset=ds["train_prefs"].select_columns(["chosen", "rejected"]))
(TRL reads a string `prompt` column as a prompt-completion dataset: keep only the columns it needs.)"""


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
    _register_cai_dataset(exs, common)
    ex.set_defaults(run=run)


def _register_cai_dataset(exs, common) -> None:
    cai = exs.add_parser(
        "cai-dataset", parents=[common], help="the Hugging Face Constitutional AI dataset shape (4 splits, a folder)",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=CAI_DATASET_HELP)
    cai.add_argument("--out", required=True, metavar="DIR", help="directory to write (must be new or empty)")
    cai.add_argument("--format", dest="fmt", choices=["arrow", "parquet"], default="arrow",
                     help="arrow: DatasetDict.save_to_disk (default); parquet: DIR/<split>.parquet")
    cai.add_argument("--overwrite", action="store_true", help="replace DIR when it holds an earlier cai-dataset export")
    cai.add_argument("--sl-runs", dest="sl_runs", help="comma-separated SL runs (default: the latest finished one)")
    cai.add_argument("--judge-runs", dest="judge_runs",
                     help="comma-separated judge runs (default: the latest finished judge run over training pairs)")
    cai.add_argument("--include-flagged", action="store_true", help="keep revisions flagged as empty/repetitive/echo")
    cai.add_argument("--min-confidence", type=float, default=0.0, help="drop AI labels with |2p-1| below this")
    add_helpful_options(cai)


def _run_cai_dataset(args, services) -> int:
    path, cai = services.export_cai_dataset(
        args.out, sl_runs=csv_list(args.sl_runs), judge_runs=csv_list(args.judge_runs), fmt=args.fmt,
        overwrite=args.overwrite, include_flagged=args.include_flagged, helpful_runs=csv_list(args.helpful_runs),
        helpful_ratio=args.helpful_ratio, min_confidence=args.min_confidence)
    sel = cai.selection
    print(", ".join(f"{s} {n}" for s, n in cai.counts.items()) + f" rows; SL run(s) {', '.join(sel['sl_runs'])} "
          f"(SFT snapshot {cai.sft.content_hash}), judge run(s) {', '.join(sel['judge_runs'])} (preference snapshot "
          f"{cai.prefs.content_hash}, {cai.prefs.overrides} with a human decision); content {cai.content_hash}",
          file=sys.stderr)
    if cai.test_trained_on:
        print(f"warning: {cai.test_trained_on} test-split prompt(s) are in a training snapshot of this database "
              "(a model here trained on them): evaluating that model on test_* is not held out", file=sys.stderr)
    if not cai.counts["test_sft"] and not cai.counts["test_prefs"]:
        print("note: no selected record is on a held-out prompt, so the test splits are empty "
              "(`cai sl --split held-out` and `cai pairs --split held-out` make some)", file=sys.stderr)
    print(path)
    return 0


def run(args, services) -> int:
    if args.what == "cai-dataset":
        return _run_cai_dataset(args, services)
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
