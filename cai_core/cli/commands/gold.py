"""`cai gold`: gold sets, the labelled comparisons judges are validated against."""
from __future__ import annotations

import json


def register(sub, common) -> None:
    g = sub.add_parser("gold", parents=[common], help="gold sets: labelled comparisons to validate judges against",
                       description="Gold sets: labelled comparisons (TRL preference, HH-RLHF or multiple-choice JSONL; "
                                   "the shipped hhh set; people's audits) with a recorded tune/test split.")
    gs = g.add_subparsers(dest="gold_command", metavar="ACTION", required=True)
    ls = gs.add_parser("list", parents=[common], help="gold sets with their split counts (shipped ones too)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_list)
    im = gs.add_parser("import", parents=[common], help="read a file of labelled comparisons into a gold set")
    im.add_argument("file")
    im.add_argument("--name", help="the set's name (default: the file name)")
    im.add_argument("--tune", type=float, default=None, help="share of pairs in the tune split (default 0.4)")
    im.add_argument("--seed", type=int, default=0, help="seed of the split and of which side the better answer is on")
    im.set_defaults(run=run_import)
    sh = gs.add_parser("show", parents=[common], help="a gold set's pairs")
    sh.add_argument("name")
    sh.add_argument("--split", choices=["tune", "test"])
    sh.add_argument("--limit", type=int, default=10)
    sh.set_defaults(run=run_show)


def run_list(args, services) -> int:
    sets = services.gold_sets()
    if args.json:
        print(json.dumps(sets, default=str))
        return 0
    for s in sets:
        counts = "not imported yet" if s["n"] is None else f"{s['n']} pairs: {s['tune']} tune / {s['test']} test"
        print(f"{s['name']}\t{counts}\t{s['origin']}")
    return 0


def run_import(args, services) -> int:
    s = services.import_gold(args.file, name=args.name, tune_fraction=args.tune, seed=args.seed)
    print(f"{s['name']}: {s['n']} pairs ({s['tune']} tune / {s['test']} test)")
    return 0


def run_show(args, services) -> int:
    from ...gold.sets import resolve_gold
    from ...store.gold import gold_pairs

    name = resolve_gold(services.store, args.name)
    for p in gold_pairs(services.store, name, split=args.split, limit=args.limit):
        print(json.dumps({k: p[k] for k in ("id", "split", "category", "correct", "prompt", "answer_a", "answer_b")}))
    return 0
