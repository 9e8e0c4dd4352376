"""`cai classify`: the response classifier on one answer, or measured on a labelled corpus."""
from __future__ import annotations

import json


def register(sub, common) -> None:
    c = sub.add_parser(
        "classify", parents=[common], help="label an answer comply / objection / evasive / incoherent, or score the "
                                           "classifier on a labelled corpus",
        description="The evaluation's response classifier (a transparent heuristic). With ANSWER: its kind and class "
                    "(give --prompt to detect deflection). With --corpus tune|test|FILE: accuracy against labelled "
                    "answers (response_sets/; test.jsonl is held apart from the tuning cases).")
    c.add_argument("answer", nargs="?", help="an answer to classify")
    c.add_argument("--prompt", help="the request it answers (needed to tell a deflection)")
    c.add_argument("--corpus", help="tune, test, or a JSONL file of {prompt, answer, label} rows")
    c.add_argument("--errors", type=int, default=10, help="misclassified rows to print (default 10)")
    c.add_argument("--json", action="store_true", help="print the score as JSON")
    c.set_defaults(run=run_classify)


def run_classify(args, services) -> int:
    from ...stages.compare.corpus import load_corpus, score_classifier
    from ...stages.compare.response_class import classify_response, response_class_of

    if args.corpus is None:
        if not args.answer:
            raise SystemExit("give an ANSWER to classify, or --corpus tune|test|FILE")
        kind = classify_response(args.answer, args.prompt)
        print(f"{response_class_of(kind)}\t{kind}")
        return 0
    score = score_classifier(load_corpus(args.corpus))
    if args.json:
        print(json.dumps(score.to_dict()))
        return 0
    lo, hi = score.class_ci
    print(f"{args.corpus}: {score.n} answers; class accuracy {score.class_accuracy:.1%} [{lo:.1%}, {hi:.1%}], "
          f"kind accuracy {score.kind_accuracy:.1%}")
    print("kind\tn\tkind right\tclass right")
    for kind, c in score.per_kind.items():
        print(f"{kind}\t{c['n']}\t{c.get('correct_kind', 0)}\t{c.get('correct_class', 0)}")
    print("confusion (rows gold class, columns predicted): " + json.dumps(score.confusion))
    for e in score.errors[: args.errors]:
        print(f"  {e['id']}: {e['label']} -> {e['predicted']}: {e['answer'][:110]!r}")
    return 0
