"""One module per `cai` subcommand. Each has ``register(sub, common)``, which adds its parser
(with its ``run`` as the parser's default), and ``run(args, services)``: the one facade, whose
store opens only when a command first uses it."""
from __future__ import annotations

from . import app, bench, checkpoints, classify, compare, constitutions, export, gold, judge, label, model, pairs, prompts, runs, sl, stats, train

__all__ = ["COMMANDS"]

COMMANDS = (prompts, constitutions, sl, pairs, judge, gold, train, compare, label, classify, checkpoints, runs, export, stats, model, bench, app)
"""In the order `cai --help` lists them."""
