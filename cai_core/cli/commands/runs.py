"""`cai runs`: every run (stages and training) with its status; judge runs with how far their
labels can be trusted (their judges' validation on gold pairs, or "not validated")."""
from __future__ import annotations


def register(sub, common) -> None:
    runs = sub.add_parser("runs", parents=[common], help="list runs", description="List runs, newest first. Judge runs "
                          "show their judges' latest validation on gold pairs (`cai judge validate`), or 'not validated'.")
    runs.add_argument("--kind", help="only runs of this kind (e.g. sl, judge, validate, train-sft)")
    runs.set_defaults(run=run)


def _trust(services, run_id: str) -> str:
    parts = []
    for t in services.judge_trust(run_id):
        v = t["validation"]
        if v is None or v["accuracy"] is None:
            parts.append("not validated")
        else:
            flip = "" if v["flip_rate"] is None else f", flips {v['flip_rate']:.0%}"
            parts.append(f"validated {v['accuracy']:.0%} [{v['ci_lo']:.0%}, {v['ci_hi']:.0%}]{flip}")
    return "; ".join(parts)


def run(args, services) -> int:
    for r in services.runs(args.kind):
        extra = f"\t{_trust(services, r['id'])}" if r["kind"] == "judge" else ""
        print(f"{r['id']}\t{r['kind']}\t{r['status']}\t{r['model']}\t{r['created_at']:%Y-%m-%d %H:%M}{extra}")
    return 0
