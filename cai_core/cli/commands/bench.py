"""`cai bench`: the benchmarks of a source checkout (bench/ beside cai_core/, not packaged)."""
from __future__ import annotations

import sys
from pathlib import Path

_ACTIONS = {
    "generation": "naive pipeline baseline vs the SL stage (+ judge), same prompts, one process",
    "store": "app queries on a synthetic database: p50/p95 latency",
    "attention": "the engine's fused-kernel vs products attention on this CPU (which one decodes faster here)",
    "revision-search": "searching n revision candidates vs the greedy revision: cost ratio, acceptable revisions",
}


def bench_modules() -> dict | None:
    """action -> its bench module, from the source checkout; None when installed without one."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "bench" / "__init__.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench import attention, generation, revision_search, store

    return {"generation": generation, "store": store, "attention": attention, "revision-search": revision_search}


def register(sub, common) -> None:
    be = sub.add_parser("bench", parents=[common], help="benchmarks (source checkout): generation speed vs a naive "
                        "baseline; store queries at scale; the engine's attention paths",
                        description="Benchmarks of a source checkout, each printing ratios against a baseline "
                                    "measured in the same run.")
    bes = be.add_subparsers(dest="action", required=True, metavar="ACTION")
    modules = bench_modules()
    for action, text in _ACTIONS.items():
        p = bes.add_parser(action, parents=[common], help=text)
        if modules is not None:  # the options live with the benchmarks themselves
            modules[action].add_arguments(p)
    be.set_defaults(run=run)


def run(args, services) -> int:
    modules = bench_modules()
    if modules is None:
        raise FileNotFoundError("`cai bench` needs a source checkout: no bench/ folder beside cai_core/")
    return modules[args.action].main(args)
