"""Batched decoding for transformers causal LMs with a shared-prefix KV cache.

The SL stage's critique and revision prompts open with the same few-shot turns (about 460 of
a critique's 590 tokens); an answer's prompt is short. ``transformers.generate`` prefills
every row's whole prompt and, with padding on the CPU, attends through ``repeat_kv``, which
copies the grouped keys and values of every row at every layer and step (measured at batch
64, context 700: 2.5 s per decoding step for attention alone). This engine instead

* **computes a shared prefix once** (batch 1) and keeps it once: every row's queries attend
  to it in one call over the whole group (a "cascade" attention: prefix part and row part
  combined by their log-sum-exp), so long few-shot prompts cost what their unique part costs;
* attends with torch's fused CPU flash-attention kernel, which returns that log-sum-exp (no
  score tensors), or with plain products where those measured faster (decoding steps on
  CPUs without AMX, other devices; :mod:`.cascade`);
* keeps grouped keys and values grouped (queries are folded onto their key/value head
  instead of the keys being repeated) in buffers allocated once per batch, written in place;
* prefills rows in slices (bounded memory), decodes the whole batch one token per step, and
  drops finished rows from the batch as they stop;
* applies the same logits processing as ``transformers.generate``: repetition penalty over
  prompt and output tokens, then greedy or temperature + top-p sampling from a seeded
  generator.

The attention lives in :mod:`.cascade`, plugged into the model as an attention
implementation; the model still trains, scores and generates the usual way without the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .cascade import ATTN_IMPLEMENTATION, State, enable
from .kv_cache import KVCache

__all__ = ["ATTN_IMPLEMENTATION", "EngineParams", "KVCache", "Output", "Work", "enable", "generate", "prefix_groups"]

PREFILL_TOKENS = 1024
"""Rows x tokens per prefill forward (bounds its memory). Measured on the SL stage's waves, 64
prompts, engine only: with the products + softmax attention 512 -> 35.3 s, 1024 -> 34.1 s,
2048 -> 37.3 s, 4096 -> 38.5 s; with the fused kernel 512 -> 35.0 s, 1024 -> 35.0 s,
2048 -> 36.8 s, 4096 -> 36.7 s (about +-5 % noise between runs)."""
MIN_SHARED_PREFIX = 32
"""Tokens a group of prompts must share before the shared part is computed once."""
LONE_PREFIX = 128
"""A prompt sharing no prefix with the others and at least this long decodes as its own
group (all but its last token as its prefix), so it does not widen every row of the batch;
shorter ones stay plain rows (a group per short prompt would cost more in attention calls)."""


def prefix_groups(seqs: Sequence[Sequence[int]], idxs: Sequence[int], min_prefix: int) -> list[tuple[list[int], int]]:
    """Cluster requests whose prompts share at least ``min_prefix`` leading tokens.

    Returns (member indices, shared length) pairs; the shared part always leaves each member
    at least one token of its own (decoding needs a last prompt token to start from)."""
    def common(a, b) -> int:
        n = min(len(a), len(b))
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        return i

    order = sorted(idxs, key=lambda i: list(seqs[i]))  # lexicographic: shared prefixes end up adjacent
    groups: list[tuple[list[int], int]] = []
    cur: list[int] = []
    shared = 0
    for i in order:
        if cur:
            s = min(shared, common(seqs[cur[0]], seqs[i]), len(seqs[i]) - 1)
            if s >= min_prefix:
                cur.append(i)
                shared = s
                continue
            groups.append((cur, shared if len(cur) > 1 else 0))
        cur, shared = [i], len(seqs[i]) - 1
    if cur:
        groups.append((cur, shared if len(cur) > 1 else 0))
    return groups


# -- decoding -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EngineParams:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None


@dataclass(slots=True)
class Output:
    tokens: list[int]
    """New tokens, up to and including the end token when one was produced."""
    stopped: bool
    """True when an end token ended the row (False: it hit max_new_tokens)."""


@dataclass(slots=True)
class Work:
    """Token positions the model actually computed (a forward pass each), summed over calls:
    what a run cost, as opposed to the prompt and output tokens it handled (shared prefixes
    computed once, reused keys/values and finished rows cost nothing)."""

    prefix_tokens: int = 0
    """Shared prefixes, computed once per group (not when the cache had them)."""
    prefill_tokens: int = 0
    """Rows' own prompt tokens after their prefix and any reused keys/values."""
    decode_tokens: int = 0
    """Decoding steps x the rows in the batch at each step (finished rows still riding along count)."""

    @property
    def total(self) -> int:
        return self.prefix_tokens + self.prefill_tokens + self.decode_tokens


def _forward(model, ids: torch.Tensor, positions: torch.Tensor, st: State) -> torch.Tensor:
    out = model(input_ids=ids, position_ids=positions, use_cache=False, logits_to_keep=1, cai_state=st)
    return out.logits[:, -1].float()


def _pick(logits: torch.Tensor, seen: torch.Tensor, p: EngineParams, gen: torch.Generator | None) -> torch.Tensor:
    """Next token per row. ``seen``: each row's prompt and output token ids so far ([rows,
    n], repeats allowed): the repetition penalty touches only those (gather/scatter, as
    transformers does; a where() over the whole vocabulary cost ~20 ms a step at batch 64)."""
    if p.repetition_penalty != 1.0:
        old = logits.gather(1, seen)
        logits.scatter_(1, seen, torch.where(old > 0, old / p.repetition_penalty, old * p.repetition_penalty))
    if p.temperature <= 0:
        return logits.max(-1).indices  # the first maximum, as argmax; 3x faster here (1 ms vs 2.8 at 64 x 49152)
    logits = logits / p.temperature
    if p.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum <= (1 - p.top_p)
        drop[:, -1] = False  # keep at least the most likely token
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)


def _prefill(model, st: State, idx: list[int], rows: list[list[int]], need: list[int], width: int, plen: list[int],
             pad: int, logits: torch.Tensor) -> None:
    """Forward the last ``max(need)`` tokens of rows ``idx`` (batch indices, one group); the
    rows' earlier tokens are already in the buffers (reused) and are attended to."""
    device = logits.device
    q = max(need[i] for i in idx)
    ids = torch.tensor([([pad] * (q - len(rows[i])) + rows[i])[-q:] for i in idx], device=device)
    valid = torch.tensor([([False] * (q - len(rows[i])) + [True] * len(rows[i]))[-q:] for i in idx], device=device)
    start = torch.tensor([plen[i] + len(rows[i]) - q for i in idx], device=device)
    positions = torch.maximum(start[:, None] + torch.arange(q, device=device)[None],
                              torch.tensor([plen[i] for i in idx], device=device)[:, None])
    sel = torch.tensor(idx, device=device)
    run = idx == list(range(idx[0], idx[0] + len(idx)))
    first = width - max(len(rows[i]) for i in idx)
    st.begin(slice(idx[0], idx[-1] + 1) if run else sel, width - q, q, valid, first=first)
    logits[sel] = _forward(model, ids, positions, st)


def _stash(cache: KVCache, prefix: tuple[int, ...], st: State, j: int, tokens: list[int], start: int) -> None:
    """Keep batch row ``j``'s keys/values (columns start.. for ``tokens``) for later calls."""
    end = start + len(tokens)
    cache.put_row(prefix, tuple(tokens), [t[j, :, start:end].clone() for t in st.k],
                  [t[j, :, start:end].clone() for t in st.v])


@torch.inference_mode()
def _generate_batch(model, parts: list[tuple[list[int], list[list[int]]]], p: EngineParams, eos: set[int], pad: int,
                    gen: torch.Generator | None, cache: KVCache | None = None, work: Work | None = None) -> list[Output]:
    """Decode one batch: ``parts`` are (shared prefix, rows after it) groups, decoded
    together (each row's queries see its own group's prefix). Outputs in row order."""
    cfg = model.config
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    layers = cfg.num_hidden_layers
    kvh = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rows = [r for _, rs in parts for r in rs]
    gids = [k for k, (_, rs) in enumerate(parts) for _ in rs]
    keys = [tuple(pre) for pre, _ in parts]
    plen = [len(parts[k][0]) for k in gids]
    n = len(rows)
    width = max(len(r) for r in rows)
    st = State(layers, n, kvh, head_dim, width + p.max_new_tokens, dtype, device)
    st.gid = torch.tensor(gids, dtype=torch.long)
    vocab = model.get_output_embeddings().weight.shape[0]
    ids_seen: list[list[int]] = []  # each row's prompt tokens, prefix included (repetition penalty)
    a = 0
    for (prefix, rs), key in zip(parts, keys):
        P = len(prefix)
        if not P:
            st.prefix_k.append(None)
            st.prefix_v.append(None)
        elif cache is not None and key in cache.prefixes:
            k, v = cache.prefixes[key]
            st.prefix_k.append(k)
            st.prefix_v.append(v)
        else:
            pst = State(layers, 1, kvh, head_dim, P, dtype, device)
            pst.prefix_k, pst.prefix_v = [None], [None]
            pst.begin(slice(0, 1), 0, P)
            model(input_ids=torch.tensor([prefix], device=device), position_ids=torch.arange(P, device=device)[None],
                  use_cache=False, logits_to_keep=1, cai_state=pst)
            st.prefix_k.append([t[0] for t in pst.k])
            st.prefix_v.append([t[0] for t in pst.v])
            if work is not None:
                work.prefix_tokens += P
            if cache is not None:
                cache.put_prefix(key, st.prefix_k[-1], st.prefix_v[-1])
        uniq = sorted(set(prefix))
        ids_seen += [uniq + sorted(set(r)) for r in rs]
        a += len(rs)
    # rows sit left-padded in the buffers (a row of length L fills the last L of the `width`
    # columns); a row continuing a cached one gets those keys/values copied in
    need = [len(r) for r in rows]
    for i, r in enumerate(rows):
        hit = cache.best_row(keys[gids[i]], r) if cache is not None else None
        if hit is not None:
            m, k, v = hit
            c0 = width - len(r)
            for li in range(layers):
                st.k[li][i, :, c0 : c0 + m] = k[li][:, :m]
                st.v[li][i, :, c0 : c0 + m] = v[li][:, :m]
            st.valid[i, c0 : c0 + m] = True
            need[i] = len(r) - m
    # prefill group by group, in slices of rows needing similar numbers of tokens
    if work is not None:
        work.prefill_tokens += sum(need)
    logits = torch.empty(n, vocab, device=device)
    for k in range(len(parts)):
        order = sorted((i for i in range(n) if gids[i] == k), key=lambda i: need[i])
        a = 0
        while a < len(order):
            c = 1  # grow the slice while (rows x its largest need) stays within PREFILL_TOKENS
            while a + c < len(order) and (c + 1) * need[order[a + c]] <= PREFILL_TOKENS:
                c += 1
            _prefill(model, st, sorted(order[a : a + c]), rows, need, width, plen, pad, logits)
            a += c
    st.rows = slice(None)
    longest = max(len(x) for x in ids_seen)
    seen = torch.tensor([x + [x[0]] * (longest - len(x)) for x in ids_seen], device=device)  # padded with repeats
    pos = torch.tensor([plen[i] + len(r) - 1 for i, r in enumerate(rows)], device=device)
    live = torch.arange(n, device=device)  # original index of each batch row
    outs: list[list[int]] = [[] for _ in range(n)]
    stopped = [False] * n
    eos_t = torch.tensor(sorted(eos), device=device)
    col = width

    def stash(j: int, orig: int) -> None:  # the row's prompt + the tokens fed back so far
        if cache is not None:
            _stash(cache, keys[gids[orig]], st, j, rows[orig] + outs[orig][:-1], width - len(rows[orig]))

    for t in range(p.max_new_tokens):
        nxt = _pick(logits, seen, p, gen)
        tokens, ends = nxt.tolist(), torch.isin(nxt, eos_t).tolist()
        for j, orig in enumerate(live.tolist()):
            if stopped[orig]:  # finished earlier, still riding along in the batch
                continue
            outs[orig].append(tokens[j])
            stopped[orig] = ends[j]
        if t == p.max_new_tokens - 1:
            break
        running = [j for j, orig in enumerate(live.tolist()) if not stopped[orig]]
        if not running:
            break
        if len(running) < live.numel() and (len(running) <= live.numel() * 3 // 4 or len(running) < 4):
            # drop finished rows (copying the row buffers costs about one step: not for every row)
            for j, orig in enumerate(live.tolist()):
                if stopped[orig]:
                    stash(j, orig)
            keep = torch.tensor(running, device=device)
            st.select(keep)
            live, nxt, pos, seen = live[keep], nxt[keep], pos[keep], seen[keep]
        seen = torch.cat([seen, nxt[:, None]], dim=1)
        pos = pos + 1
        st.begin(slice(None), col, 1)
        logits = _forward(model, nxt[:, None], pos[:, None], st)
        if work is not None:
            work.decode_tokens += live.numel()
        col += 1
    for j, orig in enumerate(live.tolist()):
        stash(j, orig)
    return [Output(o, s) for o, s in zip(outs, stopped)]


def _batches(prompts: Sequence[Sequence[int]], groups: list[tuple[list[int], int]], batch_size: int):
    """Pack groups into batches of at most ``batch_size`` rows: (prefix, [(index, row)]) parts.
    Big groups first; a group larger than the room left is split."""
    batches: list[list[tuple[list[int], list[int]]]] = []
    room = 0
    for members, shared in sorted(groups, key=lambda g: -len(g[0])):
        members = sorted(members, key=lambda i: len(prompts[i]))  # similar lengths together: less padding
        while members:
            if room == 0:
                batches.append([])
                room = batch_size
            take, members = members[:room], members[room:]
            batches[-1].append((list(prompts[take[0]][:shared]), take))
            room -= len(take)
    return batches


def generate(model, prompts: Sequence[Sequence[int]], params: EngineParams, *, eos: set[int], pad: int,
             batch_size: int = 64, min_shared_prefix: int = MIN_SHARED_PREFIX, cache: KVCache | None = None,
             work: Work | None = None) -> list[Output]:
    """Decode every prompt (token ids, already templated); returns outputs in input order.
    With ``cache``, rows extending earlier rows reuse their keys/values (see KVCache); with
    ``work``, the token positions computed are added to it."""
    gen = None
    if params.temperature > 0:
        gen = torch.Generator(device=next(model.parameters()).device)
        gen.manual_seed(params.seed if params.seed is not None else 0)
    results: list[Output | None] = [None] * len(prompts)
    groups, plain = [], []
    for members, shared in prefix_groups(prompts, range(len(prompts)), min_shared_prefix):
        if shared:
            groups.append((members, shared))
        elif len(members) == 1 and len(prompts[members[0]]) >= LONE_PREFIX:
            # a long prompt alone: all but its last token as its own prefix, so its row is
            # short and does not widen the batch everyone attends over
            groups.append((members, len(prompts[members[0]]) - 1))
        else:
            plain += members
    if plain:
        groups.append((plain, 0))
    for batch in _batches(prompts, groups, batch_size):
        parts = [(prefix, [list(prompts[i][len(prefix):]) for i in idx]) for prefix, idx in batch]
        outs = _generate_batch(model, parts, params, eos, pad, gen, cache, work)
        for i, o in zip([i for _, idx in batch for i in idx], outs):
            results[i] = o
    return results  # type: ignore[return-value]
