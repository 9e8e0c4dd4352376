"""`cai constitutions`: list, show, validate and import constitutions."""
from __future__ import annotations

import argparse
import sys

IMPORT_DESCRIPTION = """Import the Constitutional AI paper's released prompt files (Bai et al. 2022) as a
constitution, saved as a new version of NAME (older versions are kept). Each file's shape is
read from its content, not its name:

  critique/revision  a JSON object {"harmful0": {"prompt": ["\\n\\nCritiqueRequest: ...\\n\\nCritique:"],
                     "edit_request": "\\n\\nRevisionRequest: ...\\n\\nRevision:"}, ...}: one principle per key
  preference         a JSON list of RL-phase questions, each ending "Options:"
  few-shot           a JSON list of "\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nCritiqueRequest: ...\\n\\nCritique: ...
                     \\n\\nRevisionRequest: ...\\n\\nRevision: ..." strings (optional): the [[examples]]

Preference question i is paired with critique principle i (file order); the counts must match.
A multi-turn few-shot example keeps its earlier turns in the example's prompt, as a transcript."""

IMPORT_EPILOG = """example:
  cai constitutions import critique_revision.json preferences.json few_shot.json --name paper
  cai sl --prompts red-team --constitution paper --rounds 1"""


def register(sub, common) -> None:
    co = sub.add_parser("constitutions", parents=[common], help="list, show, validate and import constitutions",
                        description="List, show, validate and import constitutions (edited ones, saved in the app, first).")
    cos = co.add_subparsers(dest="action", required=True, metavar="ACTION")
    cos.add_parser("list", parents=[common], help="constitutions found (name, version, principles, file)")
    cshow = cos.add_parser("show", parents=[common], help="print a constitution's principles")
    cshow.add_argument("name")
    val = cos.add_parser("validate", parents=[common], help="check TOML files; exit 1 on the first error")
    val.add_argument("files", nargs="+")
    imp = cos.add_parser("import", parents=[common], help="import the Constitutional AI paper's prompt files as a constitution",
                         description=IMPORT_DESCRIPTION, epilog=IMPORT_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("files", nargs="+", metavar="FILE",
                     help="the paper's JSON files, in any order: critique/revision and preference (required), few-shot")
    imp.add_argument("--name", required=True, help="constitution name (`cai sl --constitution NAME`)")
    imp.add_argument("--title", help="title (default: the name)")
    co.set_defaults(run=run)


def run_import(args, services) -> int:
    res = services.import_paper_constitution(args.files, args.name, title=args.title)
    c = res.constitution
    shapes = ", ".join(f"{f.path}: {f.shape} ({len(f.items)})" for f in res.files)
    print(f"{c.name}: saved version {c.version}, {len(c.principles)} principles, {len(c.examples)} examples "
          f"from {shapes}", file=sys.stderr)
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    print(c.name)
    return 0


def run(args, services) -> int:
    if args.action == "import":
        return run_import(args, services)
    if args.action == "validate":
        from ...constitutions import ConstitutionError, load_constitution

        for f in args.files:
            try:
                c = load_constitution(f)
            except (ConstitutionError, OSError) as e:
                print(f"{e}", file=sys.stderr)
                return 1
            print(f"{f}: ok ({len(c.principles)} principles, {len(c.examples)} examples, version {c.version})")
        return 0
    if args.action == "list":
        for name, path in services.constitutions().items():
            try:
                c = services.constitution(name)
                print(f"{name}\t{c.version}\t{len(c.principles)} principles\t{path}")
            except Exception as e:  # a broken file must not hide the others
                print(f"{name}\tINVALID\t{e}")
        return 0
    c = services.constitution(args.name)
    print(f"{c.name} ({c.version}): {c.title}\n{c.description}\n")
    for p in c.principles:
        print(f"[{p.id}]\n  critique:   {p.critique}\n  revision:   {p.revision}\n  preference: {p.preference}")
    return 0
