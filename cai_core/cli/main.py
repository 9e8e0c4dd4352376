"""`cai`: the command-line face of Constitution Lab (the same facade as the app).

Global options (--db, --model, --backend, --base-url, ...) may come before or after the
subcommand. Results go to stdout (ids, JSON); progress and messages go to stderr. Each
subcommand lives in :mod:`.commands` and registers its own parser.
"""
from __future__ import annotations

import argparse
import sys

from .commands import COMMANDS
from .options import global_options, settings_from

__all__ = ["main", "build_parser", "EPILOG"]

EPILOG = """examples:
  cai prompts import my_prompts.jsonl --name mine
  cai sl --prompts red-team --constitution harmless --rounds 2 --limit 4
  cai export sft --out sft.jsonl
  cai train sft --max-steps 20
  cai pairs --prompts red-team --limit 16              # from the latest SFT checkpoint
  cai judge --constitution harmless --mode logprob     # the latest pairs
  cai judge validate --gold hhh --mode logprob,calibrated  # accuracy against gold labels
  cai export preferences --out prefs.jsonl             # the latest judge run
  cai train reward --max-steps 20 && cai train ppo --max-steps 2
  cai compare --models base,sft,rl --prompts red-team  # its held-out split
  cai stats --json
  cai bench generation --prompts 64 --new-tokens 64 --json
  cai bench store --verdicts 1000000 --json
  cai app --port 7860

shipped prompt sets (imported on first use, split 80/20 train/held-out): red-team, benign
shipped constitutions: seed, harmless (see `cai constitutions list`)
shipped gold set: hhh, 240 labelled pairs (see `cai gold list`)
"""


def build_parser() -> argparse.ArgumentParser:
    common = global_options()
    parser = argparse.ArgumentParser(
        prog="cai", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Constitutional AI end to end: red-team prompts -> critique -> revision -> training data, every step stored in DuckDB.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub, common)
    return parser


def _err(msg: str) -> int:
    print(f"cai: error: {msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from ..constitutions import ConstitutionError
    from ..models import ModelNotFound
    from ..prompt_sets import PromptFileError
    from ..services import Services
    from ..store import StoreLocked

    args = build_parser().parse_args(argv)
    try:
        services = Services(settings_from(args))
        try:
            return args.run(args, services)
        finally:
            services.close()
    except (ConstitutionError, PromptFileError, StoreLocked, ModelNotFound, FileNotFoundError) as e:
        return _err(str(e))
    except KeyError as e:
        return _err(e.args[0] if e.args else str(e))
    except ValueError as e:
        return _err(str(e))


if __name__ == "__main__":
    sys.exit(main())
