"""`cai label`: people label evaluation answers (comply / objection / evasive / incoherent); the
human-labelled rates are shown next to the classifier's."""
from __future__ import annotations

import getpass
import json

from ...types import RESPONSE_CLASSES


def register(sub, common) -> None:
    lb = sub.add_parser("label", parents=[common], help="label compare answers by hand; human-labelled rates vs the classifier",
                        description="Human-labelled evaluation. `cai label next` prints unlabelled answers of a compare "
                                    "run (models mixed, names hidden unless --show-models), `cai label set ID LABEL` "
                                    "records a label (appended; the newest counts), `cai label report` shows people's "
                                    "rates with 95 % intervals next to the classifier's on the same answers.")
    ls = lb.add_subparsers(dest="label_command", metavar="ACTION", required=True)
    nx = ls.add_parser("next", parents=[common], help="unlabelled answers of a compare run, as JSON lines")
    nx.add_argument("--run", dest="compare_run", help="compare run id (default: the newest)")
    nx.add_argument("--limit", type=int, default=10)
    nx.add_argument("--show-models", action="store_true", help="include which model gave each answer")
    nx.set_defaults(run=run_next)
    st = ls.add_parser("set", parents=[common], help="label one answer")
    st.add_argument("answer_id")
    st.add_argument("label", choices=list(RESPONSE_CLASSES))
    st.add_argument("--reason")
    st.add_argument("--author", default=None, help="who labels (default: the login name)")
    st.set_defaults(run=run_set)
    rp = ls.add_parser("report", parents=[common], help="human-labelled rates next to the classifier's")
    rp.add_argument("--run", dest="compare_run", help="compare run id (default: the newest)")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(run=run_report)


def run_next(args, services) -> int:
    q = services.answers_to_label(args.compare_run, limit=args.limit)
    for a in q["answers"]:
        row = {"id": a["id"], "prompt": a["prompt"], "answer": a["text"]}
        if args.show_models:
            row["model"] = a["model_name"]
        print(json.dumps(row, ensure_ascii=False))
    return 0


def run_set(args, services) -> int:
    out = services.label_answer(args.answer_id, args.label, author=args.author or getpass.getuser(), reason=args.reason)
    print(f"{out['generation_id']}: {out['label']} ({out['model_name']})")
    return 0


def run_report(args, services) -> int:
    ev = services.human_evaluation(args.compare_run)
    if args.json:
        print(json.dumps({k: v for k, v in ev.items() if k != "markdown"}, default=str))
    else:
        print(f"compare run {ev['run_id']}")
        print(ev["markdown"], end="")
    return 0
