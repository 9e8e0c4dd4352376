"""`cai bench revision-search`: what searching n revision candidates costs and buys, same turns.

One process, one backend: the first answers and round-1 critiques of ``--prompts`` red-team
train prompts are made once; then the same revision turns go through the search
(``revision_search_step``, ``--candidates`` n: greedy first, samples only where it is not
acceptable) and through the plain greedy step (``revision_step``). The search runs first, so
the greedy step can reuse whatever the engine's key/value cache kept from it: the cost ratio
printed is an upper bound. Both sets of revisions are scored by the same scorer.

Prints one JSON object on the last line with ``--json``: seconds and generated tokens of each
way, ``cost_ratio`` (search / greedy seconds), ``tokens_ratio``, acceptable revisions
each way, samples asked for, and the scorer's kinds; ``stage_cost_ratio`` is the one-round SL
stage's (first answers and critiques, timed once, plus each way's revisions).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

__all__ = ["main", "run_revision_search_bench", "add_arguments"]


def _turns(store, backend, constitution, prompts, params, *, run_id: str, few_shot: int):
    from cai_core.constitutions import draw_principle
    from cai_core.stages.generate import first_answers
    from cai_core.stages.revise import Turn, critique_step

    answers = [(p, g) for p, _, g in first_answers(prompts, backend, params, run_id=run_id) if g is not None]
    turns = [Turn(p, 1, draw_principle(constitution, seed=0, key=f"{p.id}:1"), g.text, g.id) for p, g in answers]
    crits = critique_step(turns, backend, constitution, run_id=run_id, cot=False, few_shot=few_shot, params=params)
    return [Turn(t.prompt, 1, t.principle, t.answer, t.parent_id, c) for t, _, c in crits if c is not None]


def run_revision_search_bench(*, model: str = "embedded", backend_kind: str = "local", prompts: int = 16,
                              candidates: int = 4, new_tokens: int = 96, temperature: float = 0.8,
                              few_shot: int = 2, batch_size: int = 64, sentences: int = 0,
                              revision_tokens: int | None = None) -> dict:
    from dataclasses import replace

    from cai_core.backends import make_backend
    from cai_core.backends.base import GenerationParams
    from cai_core.constitutions import find_constitution
    from cai_core.prompt_sets import get_prompt_set, prompts_of
    from cai_core.stages.revise import revision_opening, revision_step
    from cai_core.stages.revision_search import revision_search_step, score_candidate, shown_examples
    from cai_core.store import Store

    backend = make_backend(backend_kind, model, batch_size=batch_size)
    cons = find_constitution("harmless")
    store = Store()
    ps = get_prompt_set(store, "red-team")
    params = GenerationParams(max_new_tokens=new_tokens, repetition_penalty=1.1)
    rev_params = replace(params, max_new_tokens=revision_tokens or new_tokens)
    sample = replace(rev_params, temperature=temperature, seed=0)
    t = time.perf_counter()
    turns = _turns(store, backend, cons, prompts_of(store, ps.id, split="train", limit=prompts), params,
                   run_id="bench", few_shot=few_shot)
    shared_s = time.perf_counter() - t  # first answers + critiques: the SL stage's part both ways share

    t = time.perf_counter()
    searched = revision_search_step(turns, backend, cons, run_id="bench", few_shot=few_shot, params=rev_params,
                                    candidates=candidates, sample=sample, sentences=sentences)
    search_s = time.perf_counter() - t
    t = time.perf_counter()
    greedy = revision_step(turns, backend, cons, run_id="bench", few_shot=few_shot, params=rev_params,
                           sentences=sentences)
    greedy_s = time.perf_counter() - t

    def examples(turn):
        return [x for e in shown_examples(cons.examples, turn.principle, few_shot) for x in (e.answer, e.revision)]

    greedy_scores = [score_candidate(t.prompt.text, r.text, r.flags, examples=examples(t),
                                     opening=revision_opening(t)) if r else None for t, _, r in greedy]
    kept = [next((c for c in cands if c.kept), None) for _, _, _, cands in searched]
    search_tokens = sum(len(c.text.split()) for _, _, _, cands in searched for c in cands)
    greedy_tokens = sum(len(r.text.split()) for _, _, r in greedy if r)
    return {
        "bench": "revision-search", "model": backend.id, "turns": len(turns), "candidates": candidates,
        "temperature": temperature, "new_tokens": new_tokens, "revision_tokens": rev_params.max_new_tokens,
        "sentences": sentences,
        "greedy_s": round(greedy_s, 4), "search_s": round(search_s, 4),
        "cost_ratio": round(search_s / greedy_s, 2) if greedy_s else None,
        "answers_critiques_s": round(shared_s, 4),
        "stage_cost_ratio": round((shared_s + search_s) / (shared_s + greedy_s), 2) if greedy_s else None,
        "words_greedy": greedy_tokens, "words_search": search_tokens,
        "tokens_ratio": round(search_tokens / greedy_tokens, 2) if greedy_tokens else None,
        "sampled_turns": sum(len(cands) > 1 for _, _, _, cands in searched),
        "acceptable_greedy": sum(bool(s and s.acceptable) for s in greedy_scores),
        "acceptable_search": sum(bool(k and k.acceptable) for k in kept),
        "kinds_greedy": dict(Counter(s.kind for s in greedy_scores if s)),
        "kinds_search": dict(Counter(k.kind for k in kept if k)),
    }


def main(args: argparse.Namespace) -> int:
    res = run_revision_search_bench(model=getattr(args, "model", None) or "embedded",
                                    backend_kind=getattr(args, "backend", None) or "local", prompts=args.prompts,
                                    candidates=args.candidates, new_tokens=args.new_tokens,
                                    temperature=args.temperature, batch_size=getattr(args, "batch_size", None) or 64,
                                    sentences=args.sentences, revision_tokens=args.revision_tokens)
    if not args.json:
        print(f"{res['turns']} revision turns, {res['candidates']} candidates (T={res['temperature']}): search "
              f"{res['search_s']} s vs greedy {res['greedy_s']} s = x{res['cost_ratio']} time, x{res['tokens_ratio']} "
              f"words; {res['sampled_turns']} turns sampled; acceptable {res['acceptable_search']} vs "
              f"{res['acceptable_greedy']} greedy; the SL stage (answers + critiques {res['answers_critiques_s']} s "
              f"+ revisions): x{res['stage_cost_ratio']}")
    print(json.dumps(res))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", type=int, default=16, help="red-team train prompts (default 16)")
    p.add_argument("--candidates", type=int, default=4, help="revision candidates searched (default 4)")
    p.add_argument("--new-tokens", type=int, default=96, help="max new tokens per step (default 96)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of candidates 2.. (0.8)")
    p.add_argument("--sentences", type=int, default=0,
                   help="keep each revision's first N sentences, both ways (default 0 = all; cai sl --revision-sentences)")
    p.add_argument("--revision-tokens", type=int,
                   help="max new tokens per revision, both ways (default --new-tokens; cai sl --revision-max-new-tokens)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


if __name__ == "__main__":  # python -m bench.revision_search
    parser = argparse.ArgumentParser(prog="python -m bench.revision_search")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--batch-size", type=int, default=64)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
