"""`cai checkpoints list`: trained checkpoints with their lineage."""
from __future__ import annotations


def register(sub, common) -> None:
    ck = sub.add_parser("checkpoints", parents=[common], help="list trained checkpoints", description="List trained checkpoints.")
    cks = ck.add_subparsers(dest="action", required=True, metavar="ACTION")
    cks.add_parser("list", parents=[common], help="id, kind, run, snapshot, path")
    ck.set_defaults(run=run)


def run(args, services) -> int:
    for c in services.checkpoints():
        print(f"{c['id']}\t{c['kind']}\t{c['run_id']}\t{c['snapshot_hash'] or ''}\t{c['path']}")
    return 0
