"""`cai runs`: every run (stages and training) with its status."""
from __future__ import annotations


def register(sub, common) -> None:
    runs = sub.add_parser("runs", parents=[common], help="list runs", description="List runs, newest first.")
    runs.add_argument("--kind", help="only runs of this kind (e.g. sl, judge, train-sft)")
    runs.set_defaults(run=run)


def run(args, services) -> int:
    for r in services.runs(args.kind):
        print(f"{r['id']}\t{r['kind']}\t{r['status']}\t{r['model']}\t{r['created_at']:%Y-%m-%d %H:%M}")
    return 0
