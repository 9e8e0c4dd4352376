"""`cai sl`: run (or resume) the SL phase on a prompt set's train split."""
from __future__ import annotations

import sys
from dataclasses import replace

from ..options import progress_bar


def register(sub, common) -> None:
    sl = sub.add_parser("sl", parents=[common], help="run (or resume) the SL phase: first answer, then critique -> revision rounds",
                        description="Run (or resume) the SL phase on the train split of a prompt set: first answer, then "
                                    "critique -> revision rounds. Held-out prompts stay for `cai compare`.")
    sl.add_argument("--prompts", required=True, help="prompt set name (e.g. red-team)")
    sl.add_argument("--constitution", required=True, help="constitution name (file name without .toml) or path")
    sl.add_argument("--rounds", type=int, default=2, help="critique -> revision rounds (default 2; 0 = first answers only, e.g. helpful "
                                                               "samples of benign prompts to mix into SFT)")
    sl.add_argument("--split", default="train", choices=["train", "held-out", "all"],
                    help="which prompts of the set (default train; all = every prompt)")
    sl.add_argument("--limit", type=int, help="use only the first K prompts (of the split)")
    sl.add_argument("--cot", action="store_true", help="chain-of-thought critiques")
    sl.add_argument("--few-shot", type=int, default=2, help="constitution examples shown first (default 2, 0 = none)")
    sl.add_argument("--seed", type=int, default=0, help="seeds principle draws and sampling (default 0)")
    sl.add_argument("--max-new-tokens", type=int, help="cap for answers and revisions (default 160; critiques 96)")
    sl.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    sl.add_argument("--candidates", type=int, default=1,
                    help="revision candidates per round (default 1 = greedy only): when the greedy revision is not "
                         "acceptable (an on-topic explained objection, unflagged), sample N-1 more and keep the best; "
                         "a round with none acceptable is kept but flagged and left out of SFT")
    sl.add_argument("--candidate-temperature", type=float, default=0.8,
                    help="sampling temperature of candidates 2..N (default 0.8)")
    sl.add_argument("--revision-sentences", type=int, default=0,
                    help="keep only each revision's first N complete sentences (default 0 = all): a small model's "
                         "objection and reason come first, what follows drifts; the cut is recorded (finish_reason "
                         "trimmed)")
    sl.add_argument("--trim-truncated", action="store_true",
                    help="a first answer cut off by the token cap is cut back to its last complete sentence (when "
                         "that keeps most of it) instead of being flagged truncated: long helpful answers stay usable "
                         "as helpful samples")
    sl.add_argument("--answer-opening", default="", metavar="TEXT",
                    help="make every first answer start with TEXT, which the model continues ({task} = the request "
                         "restated), e.g. with --rounds 0 on benign prompts and a trained model, \"I won't {task}, "
                         "because it could\" gives its own refusals of them: the rejected side of `cai train dpo "
                         "--contrast --refusal-runs`")
    sl.add_argument("--revision-max-new-tokens", type=int,
                    help="token cap for revisions only (default: --max-new-tokens, else 160); with "
                         "--revision-sentences a short cap saves time")
    sl.add_argument("--chunk", type=int, default=64, help="requests per backend call and per write (default 64)")
    sl.add_argument("--new-run", action="store_true", help="start a fresh run even if one with these settings exists")
    sl.set_defaults(run=run)


def config_of(args):
    from ...runners.sl import SLConfig

    cfg = SLConfig(rounds=args.rounds, cot=args.cot, few_shot=args.few_shot, limit=args.limit, seed=args.seed,
                   chunk=args.chunk, split=None if args.split == "all" else args.split, candidates=args.candidates,
                   candidate_temperature=args.candidate_temperature, revision_sentences=args.revision_sentences,
                   trim_truncated=args.trim_truncated, answer_opening=args.answer_opening)
    for k in ("answer", "critique", "revision"):
        p = getattr(cfg, k)
        if args.max_new_tokens and k != "critique":
            p = replace(p, max_new_tokens=args.max_new_tokens)
        if args.revision_max_new_tokens and k == "revision":
            p = replace(p, max_new_tokens=args.revision_max_new_tokens)
        if args.temperature:
            p = replace(p, temperature=args.temperature)
        cfg = replace(cfg, **{k: p})
    return cfg


def run(args, services) -> int:
    update, close = progress_bar()
    try:
        result = services.sl(prompts=args.prompts, constitution=args.constitution, config=config_of(args),
                             new_run=args.new_run, progress=update)
    except KeyboardInterrupt:
        close()
        print("\ninterrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    close()
    print(f"run {result.run.id}: {result.status}; {result.prompts} prompts, {result.generations} answers, "
          f"{result.critiques} critiques, {result.revisions} revisions"
          + (f", {result.failed} failed (rerun to retry)" if result.failed else ""), file=sys.stderr)
    search = services.revision_search_counts(result.run.id)
    if search["candidates"]:
        print(f"revision search: {search['candidates']} candidates over {search['rounds']} rounds, {search['acceptable']} "
              f"rounds kept an acceptable one; {search['final_unacceptable']} of {result.prompts} prompts have no "
              "acceptable final revision (left out of SFT snapshots)", file=sys.stderr)
    print(result.run.id)
    return 0 if result.status == "finished" else 3
