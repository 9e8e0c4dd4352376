"""`cai train KIND`: a training job on an explicit selection of data, as a subprocess.

Each kind's flags come from its config dataclass (as TRL's `trl` CLI reuses its scripts'
parsers): `cai train sft --max-steps 3 --learning-rate 2e-5` sets those fields, and
`python -m cai_core.training.sft --config cfg.json` takes the same ones. Selection flags say
what the run trains on; without them it is the latest finished run of the right kind.
"""
from __future__ import annotations

import json
import sys

from ...types import PREFERENCE_KINDS, RL_KINDS, TRAIN_KINDS
from ..options import add_helpful_options, csv_list, progress_bar

_RESOLVED = ("model", "output_dir", "snapshot_hash", "data", "prompts", "reward_model", "algorithm", "device")
"""Config fields the command fills itself (from --base, --reward-model, the selection, --device)."""

_SELECTION_HELP = {
    "sft": "trains on the final revisions of --sl-runs (default: the latest finished SL run)",
    "reward": "trains on the labels of --judge-runs (default: the latest finished judge run over training pairs)",
    "dpo": "trains the policy (default: the latest SFT checkpoint) by DPO on the labels of --judge-runs (default: the "
           "latest finished judge run over training pairs), or with --contrast on pairs made without a judge; "
           "no reward model",
    **{k: "trains on a prompt set's split (default: red-team, train) against --reward-model "
          "(default: the latest reward checkpoint), starting from the latest SFT checkpoint" for k in RL_KINDS},
}


def register(sub, common) -> None:
    from ...training import config_class, default_config
    from ...training.config import add_arguments

    tr = sub.add_parser("train", parents=[common], help="train SFT / reward / DPO / PPO / RLOO / GRPO as a subprocess job (resumes when re-issued)",
                        description="Train as a subprocess job; re-issuing the same command resumes it, and the same "
                                    "selection of data finds the finished run (nothing is retrained).")
    kinds = tr.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in TRAIN_KINDS:
        k = kinds.add_parser(kind, parents=[common], help=_SELECTION_HELP[kind],
                             description=f"{config_class(kind).__doc__.strip()} This run {_SELECTION_HELP[kind]}. "
                                         f"CPU defaults: {json.dumps(_cpu_defaults(default_config(kind)))}.")
        sel = k.add_argument_group("what it trains on")
        if kind == "sft":
            sel.add_argument("--sl-runs", help="comma-separated SL run ids (default: the latest finished SL run)")
            sel.add_argument("--include-flagged", action="store_true", help="keep revisions flagged as empty/repetitive/echo")
            add_helpful_options(sel)
        elif kind in PREFERENCE_KINDS:
            sel.add_argument("--judge-runs", help="comma-separated judge run ids; several = an ensemble "
                                                  "(default: the latest finished judge run over training pairs)")
            sel.add_argument("--min-confidence", type=float, default=0.0, help="drop AI labels with |2p-1| below this")
            con = k.add_argument_group("or pairs by construction, no judge (the HF CAI dataset's train_prefs shape)")
            con.add_argument("--contrast", action="store_true",
                             help="train on pairs made without a judge instead of judge labels: each acceptable revision of "
                                  "--sl-runs over its first answer, and each benign prompt a trained model refused "
                                  "(--refusal-runs) with the helpful answer of --helpful-runs over that refusal")
            con.add_argument("--sl-runs", help="comma-separated SL runs (default: the latest finished SL run with revisions)")
            con.add_argument("--helpful-runs", help="comma-separated SL runs of helpful answers to benign prompts "
                                                    "(`cai sl --prompts benign --rounds 0`): the chosen side")
            con.add_argument("--refusal-runs", help="comma-separated answers-only SL runs of the trained model on the same "
                                                    "benign prompts (`cai --model sft sl --prompts benign --rounds 0`): its "
                                                    "answers the classifier reads as refusals are the rejected side")
            con.add_argument("--harmful-rejected", default="first",
                             help="what each acceptable revision is preferred over, comma-separated: first (its first "
                                  "answer; default), bare (the same refusal with its reason cut off: teaches explaining "
                                  "an objection without teaching to refuse more)")
            con.add_argument("--benign-ratio", type=float,
                             help="at most this many benign pairs per harmful pair (default: all of them)")
        else:
            sel.add_argument("--prompts", dest="prompt_set", help="prompt set (default red-team)")
            sel.add_argument("--split", default="train", choices=["train", "held-out", "all"], help="its split (default train)")
            sel.add_argument("--reward-model", dest="reward_checkpoint",
                             help="reward checkpoint id or folder (default: the latest reward checkpoint)")
        job = k.add_argument_group("job")
        job.add_argument("--base", help="model to start from: 'base', a checkpoint id, a folder "
                                        "(default: base for sft/reward, the latest SFT checkpoint for DPO and RL)")
        job.add_argument("--config", dest="train_config", metavar="FILE", help="JSON file of config fields (flags override it)")
        job.add_argument("--num-processes", type=int, default=1, help="data-parallel processes via accelerate launch")
        job.add_argument("--new-run", action="store_true", help="train again even if a run with these settings exists")
        job.add_argument("--detach", action="store_true", help="start the job and return at once (prints the run id)")
        add_arguments(k.add_argument_group(f"{kind} config (fields of {config_class(kind).__name__})"),
                      config_class(kind), exclude=_RESOLVED)
        k.set_defaults(run=run)


def _cpu_defaults(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k in ("max_steps", "learning_rate", "per_device_batch_size")}


def _config(args, services) -> dict:
    from ...training import config_class

    cfg: dict = {}
    if args.train_config:
        with open(args.train_config, encoding="utf-8") as f:
            cfg.update(json.load(f))
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class(args.kind))} - set(_RESOLVED)
    cfg.update({k: v for k, v in vars(args).items() if k in names})
    if args.base:
        cfg["model"] = services.resolve_model_path(args.base)
    if getattr(args, "reward_checkpoint", None):
        cfg["reward_model"] = services.resolve_model_path(args.reward_checkpoint)
    if services.settings.device:
        cfg["device"] = services.settings.device
    return cfg


def _selection(args) -> dict:
    if args.kind == "sft":
        sel = {"sl_runs": csv_list(args.sl_runs), "include_flagged": args.include_flagged}
        if args.helpful_runs:
            sel.update(helpful_runs=csv_list(args.helpful_runs), helpful_ratio=args.helpful_ratio)
        return sel
    if args.kind in PREFERENCE_KINDS and args.contrast:
        if args.judge_runs:
            raise ValueError(f"cai train {args.kind}: --contrast trains on pairs by construction, not on --judge-runs")
        return {"contrast": True, "sl_runs": csv_list(args.sl_runs), "helpful_runs": csv_list(args.helpful_runs),
                "refusal_runs": csv_list(args.refusal_runs),
                **({"benign_ratio": args.benign_ratio} if args.benign_ratio is not None else {}),
                **({"harmful_rejected": csv_list(args.harmful_rejected)} if args.harmful_rejected != "first" else {})}
    if args.kind in PREFERENCE_KINDS:
        if args.sl_runs or args.helpful_runs or args.refusal_runs or args.benign_ratio is not None:
            raise ValueError(f"cai train {args.kind}: --sl-runs/--helpful-runs/--refusal-runs/--benign-ratio go with "
                             "--contrast")
        return {"judge_runs": csv_list(args.judge_runs), "min_confidence": args.min_confidence}
    return {"prompt_set": args.prompt_set, "split": None if args.split == "all" else args.split}


def run(args, services) -> int:
    from ...training.launcher import wait

    run, proc, runs_dir, inputs = services.start_training(args.kind, config=_config(args, services),
                                                          selection=_selection(args), new_run=args.new_run,
                                                          num_processes=args.num_processes)
    print(inputs.description, file=sys.stderr)
    for w in inputs.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if proc is None:
        print(f"run {run.id}: already finished on this data (nothing to train; --new-run trains again)", file=sys.stderr)
    else:
        print(f"run {run.id}: folder {runs_dir / run.id}", file=sys.stderr)
    if args.detach and proc is not None:
        print(run.id)
        return 0
    update, close = progress_bar()
    try:
        state = wait(services.store, run, proc, runs_dir, progress=update)
    except KeyboardInterrupt:
        close()
        services.cancel_training(run.id)
        if proc is not None:
            proc.wait(timeout=120)
        services.training_state(run.id)
        print("\ncancelled: the job saved a checkpoint; re-issue the command to resume", file=sys.stderr)
        return 130
    close()
    print(f"run {run.id}: {state.status} at step {state.step}"
          + (f"; checkpoint {state.checkpoint_id}" if state.checkpoint_id else "")
          + (f"; error: {state.error}" if state.error else ""), file=sys.stderr)
    print(run.id)
    return 0 if state.status == "finished" else 3
