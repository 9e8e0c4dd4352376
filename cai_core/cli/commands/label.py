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
                                    "records a label (appended; the newest counts), `cai label import FILE` records many (the "
                                    "`next` output with a `label` added to each line), `cai label report` shows people's "
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
    im = ls.add_parser("import", parents=[common], help="record the labels of a JSONL file (`next`'s output with a label)",
                       description="Each line: {\"id\": ANSWER_ID, \"label\": comply|objection|evasive|incoherent, "
                                   "\"reason\": optional}; other keys (prompt, answer, model) are ignored; lines without "
                                   "a label are skipped. Every line is checked before any label is recorded.")
    im.add_argument("file", help="JSONL file, e.g. `cai label next --limit 100 > todo.jsonl`, labelled by hand")
    im.add_argument("--author", default=None, help="who labels (default: the login name)")
    im.set_defaults(run=run_import)
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


def run_import(args, services) -> int:
    import sys
    from collections import Counter

    todo, skipped = [], 0
    with open(args.file, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{args.file}:{i}: not JSON ({e})") from None
            if not isinstance(row, dict) or not row.get("id"):
                raise ValueError(f"{args.file}:{i}: needs an \"id\" (an answer id from `cai label next`)")
            if not row.get("label"):
                skipped += 1
                continue
            if row["label"] not in RESPONSE_CLASSES:
                raise ValueError(f"{args.file}:{i}: label must be one of {', '.join(RESPONSE_CLASSES)}, "
                                 f"not {row['label']!r}")
            todo.append(row)
    known = services.compare_answer_ids({r["id"] for r in todo})
    unknown = [r["id"] for r in todo if r["id"] not in known]
    if unknown:
        raise ValueError(f"{len(unknown)} id(s) are not answers of a compare run, e.g. {unknown[0]!r}: nothing recorded")
    author = args.author or getpass.getuser()
    for r in todo:
        services.label_answer(r["id"], r["label"], author=author, reason=r.get("reason"))
    counts = ", ".join(f"{n} {k}" for k, n in Counter(r["label"] for r in todo).most_common())
    print(f"{len(todo)} labels recorded ({counts or 'none'})" + (f"; {skipped} lines without a label skipped" if skipped else ""),
          file=sys.stderr)
    return 0


def run_report(args, services) -> int:
    ev = services.human_evaluation(args.compare_run)
    if args.json:
        print(json.dumps({k: v for k, v in ev.items() if k != "markdown"}, default=str))
    else:
        print(f"compare run {ev['run_id']}")
        print(ev["markdown"], end="")
    return 0
