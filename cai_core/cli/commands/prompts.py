"""`cai prompts`: import, list, show and split prompt sets."""
from __future__ import annotations

import sys


def register(sub, common) -> None:
    pr = sub.add_parser("prompts", parents=[common], help="import, list, show and split prompt sets",
                        description="Import, list, show and split prompt sets.")
    prs = pr.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = prs.add_parser("import", parents=[common], help="import JSONL, CSV/TSV, TXT (one per line) or a datasets folder")
    imp.add_argument("file", help="file or local datasets folder")
    imp.add_argument("--name", help="prompt set name (default: file name without extension)")
    imp.add_argument("--column", help="column/field holding the prompt (default: prompt, text, question, ...)")
    prs.add_parser("list", parents=[common], help="list prompt sets with counts (all, train, held-out)")
    show = prs.add_parser("show", parents=[common], help="print a set's prompts")
    show.add_argument("name")
    show.add_argument("--split", choices=["train", "held-out"], help="only this split")
    show.add_argument("--limit", type=int, default=20)
    sp = prs.add_parser("split", parents=[common],
                        help="split a set anew into train / held-out (a seeded hash of each prompt's text)",
                        description="Every set is split on first use (20 %% held out, seed 0). Training uses the "
                                    "train split, evaluation the held-out one; a model is never evaluated on "
                                    "prompts it trained on, whatever the split says.")
    sp.add_argument("name")
    sp.add_argument("--held-out", type=float, default=0.2, help="share of prompts held out (default 0.2)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the hash (default 0)")
    pr.set_defaults(run=run)


def run(args, services) -> int:
    if args.action == "import":
        ps, added, dup = services.import_prompts(args.file, name=args.name, column=args.column)
        print(f"{ps.name}: {added} prompts added, {dup} already present or duplicated", file=sys.stderr)
        print(ps.name)
    elif args.action == "list":
        for r in services.prompt_sets():
            print(f"{r['name']}\t{r['prompts']}\ttrain {r['train']}\theld-out {r['held_out']}\t{r['source']}")
    elif args.action == "show":
        for p in services.prompts(args.name, split=args.split, limit=args.limit):
            print(f"{p.position}\t{p.category or ''}\t{p.text}")
    else:
        counts = services.split_prompts(args.name, held_out=args.held_out, seed=args.seed)
        print(f"{args.name}: train {counts.get('train', 0)}, held-out {counts.get('held-out', 0)}", file=sys.stderr)
        print(args.name)
    return 0
