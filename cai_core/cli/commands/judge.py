"""`cai judge`: AI labels for comparisons (both A/B orders, k principles, one or more judges)."""
from __future__ import annotations

import argparse
import json
import sys

from ...types import COMPARISON_SOURCES, DEFAULT_JUDGE_MODE, JUDGE_MODES
from ..options import csv_list, progress_bar

VALIDATE_EPILOG = """examples:
  cai judge validate --gold hhh                          # the shipped gold set, its test split
  cai judge validate --gold hhh --mode logprob,calibrated,pointwise --limit 40 --json
  cai judge validate --gold prefs.jsonl --split all      # a TRL / HH-RLHF / multiple-choice file
  cai judge validate --gold audits                       # people's decisions as gold

--json: the last stdout line is one object: the first configuration's n, accuracy (swap-averaged),
accuracy_ci, accuracy_by_order {AB, BA}, flip_rate, brier, ..., and "configs": every configuration."""


def register(sub, common) -> None:
    ju = sub.add_parser("judge", parents=[common], help="label comparisons with AI judges (both A/B orders, k principles, several judges)",
                        description="Label comparisons with AI judges. By default the comparisons made most recently "
                                    "(`cai pairs`); the evaluation pairs of `cai compare` only with --source compare.")
    ju.add_argument("--constitution", default="harmless", help="constitution whose preference questions are asked (default harmless)")
    ju.add_argument("--mode", choices=list(JUDGE_MODES), default=DEFAULT_JUDGE_MODE,
                    help=f"how the judge decides (default {DEFAULT_JUDGE_MODE}: log-prob soft labels minus the letter prior; "
                         "see `cai judge validate`)")
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
    actions = ju.add_subparsers(dest="judge_action", metavar="ACTION")
    va = actions.add_parser("validate", parents=[common], help="measure judge configurations against gold labels",
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=VALIDATE_EPILOG,
                            description="Judge labelled pairs (both orders) and report accuracy with a Wilson interval, "
                                        "accuracy per shown order, flip rate, calibration (Brier, reliability), per "
                                        "principle and per category; several modes and judges side by side. Each "
                                        "configuration's result is recorded: judge runs and reward training show it.")
    va.add_argument("--gold", required=True, help="a gold file (.jsonl), a gold set's name (shipped: hhh), or 'audits'")
    va.add_argument("--mode", default=DEFAULT_JUDGE_MODE,
                    help=f"comma-separated judge modes, or 'all' ({', '.join(JUDGE_MODES)}; default {DEFAULT_JUDGE_MODE})")
    va.add_argument("--judges", help="comma-separated judge models (default: --model)")
    va.add_argument("--principles", default="1", help="principles per pair: a number drawn per pair, or principle ids")
    va.add_argument("--split", choices=["test", "tune", "all"], default="test", help="gold split (default test)")
    va.add_argument("--categories", help="only pairs of these categories (comma-separated)")
    va.add_argument("--orders", choices=["both", "AB", "BA"], default="both")
    va.add_argument("--constitution", default="harmless")
    va.add_argument("--limit", type=int, help="only the first N pairs of the split")
    va.add_argument("--seed", type=int, default=0)
    va.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    va.set_defaults(run=run_validate)


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
    for t in services.judge_trust(res.run.id):
        val = t["validation"]
        if val is not None:
            print(f"{t['judge']} ({t['mode']}): validated on {val['gold']} ({val['split']}, {val['n']} pairs): "
                  f"accuracy {val['accuracy']:.1%} [{val['ci_lo']:.1%}, {val['ci_hi']:.1%}]", file=sys.stderr)
        for w in t["warnings"]:
            print(f"warning: {t['judge']} ({t['mode']}): {w}", file=sys.stderr)
    print(res.run.id)
    return 0 if res.status == "finished" else 3


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(JUDGE_MODES) if text.strip() == "all" else tuple(csv_list(text) or ())
    bad = [m for m in modes if m not in JUDGE_MODES]
    if bad or not modes:
        raise ValueError(f"--mode takes {', '.join(JUDGE_MODES)} or all (comma-separated), not {text!r}")
    return modes


def _row(r) -> dict:
    m = r.metrics
    keys = ("n", "accuracy", "accuracy_ci", "coverage", "accuracy_by_order", "accuracy_by_position", "flip_rate",
            "first_shown_rate", "longer_rate", "gold_longer_rate", "brier", "n_verdicts", "n_unparsed", "by_principle", "by_category", "reliability")
    return {"run": r.run.id, "judge": r.judge, "mode": r.mode, "status": r.status, **{k: m[k] for k in keys}}


def _pct(x) -> str:
    return "  n/a" if x is None else f"{x:5.1%}"


def _table(rows: list[dict]) -> str:
    head = f"{'judge':<28} {'mode':<10} {'n':>4} {'accuracy':>8} {'95% CI':>15} {'AB':>6} {'BA':>6} {'flips':>6} {'brier':>6}"
    lines = [head]
    for r in rows:
        ci = r["accuracy_ci"]
        by = r["accuracy_by_order"]
        lines.append(f"{r['judge'][-28:]:<28} {r['mode']:<10} {r['n']:>4} {_pct(r['accuracy']):>8} "
                     f"{'' if not ci else f'[{ci[0]:.1%}, {ci[1]:.1%}]':>15} {_pct(by.get('AB')):>6} "
                     f"{_pct(by.get('BA')):>6} {_pct(r['flip_rate']):>6} "
                     f"{'  n/a' if r['brier'] is None else format(r['brier'], '6.3f'):>6}")
    return "\n".join(lines)


def run_validate(args, services) -> int:
    from ...gold.metrics import judge_warnings
    from ...runners.validate import ValidateConfig

    principles = args.principles.strip()
    config = ValidateConfig(gold=args.gold, split=args.split, modes=_modes(args.mode), seed=args.seed,
                            principles=int(principles) if principles.isdigit() else tuple(csv_list(principles) or ()),
                            orders=("AB", "BA") if args.orders == "both" else (args.orders,), limit=args.limit,
                            categories=tuple(csv_list(args.categories) or ()))
    update, close = progress_bar()
    try:
        results = services.validate_judge(gold=args.gold, config=config, constitution=args.constitution,
                                          judges=csv_list(args.judges), progress=update)
    finally:
        close()
    rows = [_row(r) for r in results]
    print(_table(rows), file=sys.stderr if args.json else sys.stdout)
    for r in rows:
        for w in judge_warnings(r):
            print(f"warning: {r['judge']} ({r['mode']}): {w}", file=sys.stderr)
    if args.json:
        print(json.dumps({**rows[0], "gold": results[0].run.config.get("gold"), "split": args.split, "configs": rows}))
    return 0 if all(r.status == "finished" for r in results) else 3
