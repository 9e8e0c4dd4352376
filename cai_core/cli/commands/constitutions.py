"""`cai constitutions`: list, show and validate constitutions."""
from __future__ import annotations

import sys


def register(sub, common) -> None:
    co = sub.add_parser("constitutions", parents=[common], help="list, show and validate constitutions",
                        description="List, show and validate constitutions (edited ones, saved in the app, first).")
    cos = co.add_subparsers(dest="action", required=True, metavar="ACTION")
    cos.add_parser("list", parents=[common], help="constitutions found (name, version, principles, file)")
    cshow = cos.add_parser("show", parents=[common], help="print a constitution's principles")
    cshow.add_argument("name")
    val = cos.add_parser("validate", parents=[common], help="check TOML files; exit 1 on the first error")
    val.add_argument("files", nargs="+")
    co.set_defaults(run=run)


def run(args, services) -> int:
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
