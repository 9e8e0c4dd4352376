"""`cai model prepare`: the embedded model as a cached HF folder."""
from __future__ import annotations


def register(sub, common) -> None:
    mo = sub.add_parser("model", parents=[common], help="prepare the embedded model", description="Prepare the embedded model.")
    mos = mo.add_subparsers(dest="action", required=True, metavar="ACTION")
    mos.add_parser("prepare", parents=[common], help="convert the embedded GGUF to a cached HF folder (once)")
    mo.set_defaults(run=run)


def run(args, services) -> int:
    from ...models import embedded_model_dir

    print(embedded_model_dir())
    return 0
