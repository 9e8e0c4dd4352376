"""The engine's attention: a shared prefix once per group of rows, each row's own tokens in
buffers, joined by log-sum-exp ("cascade" attention; see :mod:`.engine`).

It plugs into a transformers model as an attention implementation (``cai_cascade``): the
engine passes its ``State`` in the forward call as ``cai_state``; without one the model runs
transformers' SDPA attention, so the same model object still trains, scores and generates
the usual way. On the CPU both parts go through torch's fused flash-attention kernel, which
returns the log-sum-exp the cascade needs (no score tensors), except decoding steps' row part
on CPUs without AMX (products over the whole row buffer are faster there: ``FUSED_DECODE``);
plain products on other devices.
"""
from __future__ import annotations

import torch

from .cpu_kernels import cpu_has_amx

__all__ = ["ATTN_IMPLEMENTATION", "FUSED", "FUSED_DECODE", "State", "attend", "enable"]

ATTN_IMPLEMENTATION = "cai_cascade"
_registered = False


class State:
    """Keys/values of one batch: the shared prefix once, each row's own tokens in buffers.

    Row buffers are left-padded: column ``c`` of every row is the same step, a row's pad
    columns are invalid. Keys and values are ``[rows, kv_heads, columns, head_dim]``, the
    layout the fused attention kernel reads in place."""

    def __init__(self, layers: int, rows: int, kv_heads: int, head_dim: int, capacity: int, dtype, device) -> None:
        # zeros, not empty: masked columns get probability 0, and 0 x NaN garbage would be NaN
        self.k = [torch.zeros(rows, kv_heads, capacity, head_dim, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.zeros(rows, kv_heads, capacity, head_dim, dtype=dtype, device=device) for _ in range(layers)]
        # per group of rows: its shared prefix's keys and values ([kv_heads, P, head_dim] per
        # layer), or None; rows of a group are contiguous
        self.prefix_k: list[list[torch.Tensor] | None] = []
        self.prefix_v: list[list[torch.Tensor] | None] = []
        self.gid = torch.zeros(rows, dtype=torch.long)
        self.segments: list[tuple[int, int, int]] = []  # (start, end, group) within the current forward's rows
        self.valid = torch.zeros(rows, capacity, dtype=torch.bool, device=device)
        self.dtype = dtype
        self.rows = slice(0, rows)  # the rows the current forward covers
        self.col = 0  # first column the current forward writes
        self.first = 0  # first column its queries attend to (earlier ones are all padding)
        self.mask: torch.Tensor | None = None
        self._bias: tuple[tuple[int, int], torch.Tensor] | None = None
        self._decode_bias: torch.Tensor | None = None

    def begin(self, rows, col: int, q: int, valid: torch.Tensor | None = None, first: int = 0) -> None:
        """Prepare a forward of ``q`` new tokens for ``rows`` at columns ``col..col+q``
        (``valid`` marks their real tokens; columns before ``first`` are not attended)."""
        self.valid[rows, col : col + q] = True if valid is None else valid
        gids = self.gid[rows].tolist()
        self.segments = []
        for i, gi in enumerate(gids):
            if self.segments and self.segments[-1][2] == gi:
                a, _, _ = self.segments[-1]
                self.segments[-1] = (a, i + 1, gi)
            else:
                self.segments.append((i, i + 1, gi))
        self.rows, self.col, self.first = rows, col, first
        end = col + q
        keys = self.valid[rows, first:end]  # [b, S]
        causal = torch.ones(q, end - first, dtype=torch.bool, device=keys.device).tril(diagonal=col - first)
        # a pad position attends to itself: it has no valid key, and an all-masked row would
        # turn into NaN values that real rows then read (0 x NaN)
        own = torch.zeros_like(causal)
        own[:, col - first :] = torch.eye(q, dtype=torch.bool, device=keys.device)
        self.mask = ((keys[:, None, :] & causal[None]) | own[None]).unsqueeze(1)  # [b, 1, q, S]
        self._bias = self._decode_bias = None

    def bias(self, heads: int, g: int) -> torch.Tensor:
        """The mask as an additive bias for ``heads`` key/value heads with ``g`` query heads
        folded onto each ([b, heads, g*q, S]); built once a forward. Materialised in full:
        the fused kernel ran 1.3-2.5x slower on a bias it had to broadcast (decoding at 200
        columns: 0.87 ms vs 0.68 ms a layer; a prefill slice: 1.9 ms vs 0.77 ms)."""
        if self._bias is None or self._bias[0] != (heads, g):
            m = self.mask.repeat(1, 1, g, 1)
            b = torch.zeros(m.shape, dtype=self.dtype, device=m.device).masked_fill_(~m, float("-inf"))
            self._bias = ((heads, g), b.expand(b.shape[0], heads, *b.shape[2:]).contiguous())
        return self._bias[1]

    def decode_bias(self) -> torch.Tensor:
        """For a decoding step: an fp32 additive bias over *every* buffer column of the
        current rows ([b, 1, 1, capacity]; columns not yet written are invalid), which
        broadcasts over heads; built once a forward."""
        if self._decode_bias is None:
            valid = self.valid[self.rows]
            self._decode_bias = torch.zeros(valid.shape, device=valid.device).masked_fill_(~valid, float("-inf"))[:, None, None]
        return self._decode_bias

    def select(self, keep: torch.Tensor) -> None:
        """Keep only these rows (finished rows leave the batch)."""
        self.k = [t.index_select(0, keep) for t in self.k]
        self.v = [t.index_select(0, keep) for t in self.v]
        self.valid = self.valid.index_select(0, keep)
        self.gid = self.gid.index_select(0, keep.cpu())


FUSED = hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
"""Use torch's fused CPU attention kernel (it returns the log-sum-exp the cascade needs) for
CPU tensors; the matmul path below is the reference and the path on other devices."""

FUSED_DECODE = FUSED and cpu_has_amx()
"""Decoding steps (one query per row over the row's own keys) through the fused kernel too.
Which is faster depends on the CPU. On a Xeon with AMX the kernel won (batch 64, 300
columns: 1.6 ms a layer against 2.7 ms for products + softmax). On an EPYC with AVX512-BF16
and no AMX, products over each row's *whole* buffer win (contiguous, so matmul reads it in
place; unwritten columns are masked), per layer at batch 64, bf16, 2 threads:

===================  ===========================  =================================
rows' width          fused kernel, column slice   products (one exp), whole buffer
===================  ===========================  =================================
45 (answers)         0.88 ms                      0.66 ms
130 (critiques)      1.22 ms                      0.73 ms
250 (revisions)      2.63 ms                      1.81 ms
===================  ===========================  =================================

and a whole decoding step of the SL stage's waves (same step timed 40 times each way,
interleaved, medians): 90.7 -> 85.0 ms (answers), 169.5 -> 155.8 (critiques), 230.2 -> 211.9
(revisions). So the kernel decodes on AMX CPUs and products do elsewhere. Prefill (many
queries a row) and the shared-prefix part (all rows' queries over one set of keys) use the
kernel on every CPU (EPYC: 8 rows x 130 queries over 130 columns 4.0 ms vs 8.1 ms; 3-18
queries over a 470-token prefix ~0.1 ms vs 0.2 ms)."""


def attend(q, k, v, bias, scale: float, fused: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``q`` [b, h, L, d] over ``k``/``v`` [b, h, S, d] with an additive
    ``bias`` (or None; the products path lets it broadcast): (output [b, h, L, d], log-sum-exp
    of the scores [b, h, L], fp32). ``fused``: torch's flash kernel where it exists (one pass
    over the keys, no score tensor), else plain products + softmax."""
    if fused and FUSED and q.device.type == "cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias, scale=scale)
    # one exp over the scores, normalised after the value product (on [.., L, d], not
    # [.., L, S]): 0.60 vs 0.73 ms at batch 64 over 131 columns against logsumexp + exp
    s = torch.matmul(q, k.transpose(-1, -2)).float().mul_(scale)
    if bias is not None:
        s = s.add_(bias)
    m = s.amax(-1, keepdim=True)
    e = s.sub_(m).exp_()
    z = e.sum(-1, keepdim=True)
    out = torch.matmul(e.to(v.dtype), v).float().div_(z).to(v.dtype)
    return out, (m + z.log()).squeeze(-1)


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, cai_state: State | None = None,
               **kwargs):
    if cai_state is None:  # ordinary use of the model (training, scoring): transformers' SDPA
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    st = cai_state
    li = module.layer_idx
    b, heads, q, d = query.shape
    kvh = key.shape[1]
    g = heads // kvh
    scale = scaling if scaling is not None else d**-0.5
    col, end = st.col, st.col + q
    st.k[li][st.rows, :, col:end] = key
    st.v[li][st.rows, :, col:end] = value
    # heads h = kv * g + j share key/value head kv: fold them into the query axis
    qg = query.reshape(b, kvh, g * q, d)
    if q == 1 and not FUSED_DECODE:
        # a decoding step, each row over its own tokens, as products over the whole buffer:
        # it is contiguous, a column slice of it is not (matmul would copy it first; at
        # batch 64, 250 columns: 1.8 ms a layer over all 314 columns, 3.5 ms over a slice)
        out, lse = attend(qg, st.k[li][st.rows], st.v[li][st.rows], st.decode_bias(), scale, fused=False)
    else:
        ks, vs = st.k[li][st.rows, :, st.first : end], st.v[li][st.rows, :, st.first : end]
        out, lse = attend(qg, ks, vs, st.bias(kvh, g), scale)
    segs = [(a, e, st.prefix_k[gi][li], st.prefix_v[gi][li]) for a, e, gi in st.segments
            if st.prefix_k[gi] is not None]
    if segs:
        # every row of a group sees the whole prefix: one call over all the group's queries;
        # then all groups' prefix parts join the row parts at once, by log-sum-exp (rows
        # without a prefix get weight 0 on theirs)
        whole = len(segs) == 1 and segs[0][0] == 0 and segs[0][1] == b
        o_p = None if whole else torch.zeros_like(out)
        l_p = None if whole else torch.full_like(lse, float("-inf"))
        for a, e, pk, pv in segs:
            n = e - a
            o, lo = attend(qg[a:e].transpose(0, 1).reshape(1, kvh, n * g * q, d), pk[None], pv[None], None, scale)
            o, lo = o.reshape(kvh, n, g * q, d).transpose(0, 1), lo.reshape(kvh, n, g * q).transpose(0, 1)
            if whole:
                o_p, l_p = o, lo
            else:
                o_p[a:e], l_p[a:e] = o, lo
        total = torch.logaddexp(lse, l_p)
        out = (out * torch.exp(lse - total)[..., None] + o_p * torch.exp(l_p - total)[..., None]).to(query.dtype)
    out = out.reshape(b, kvh, g, q, d).reshape(b, heads, q, d).transpose(1, 2).contiguous()
    return out, None


def enable(model) -> None:
    """Switch ``model`` to the cascade attention (identical to SDPA outside the engine)."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        AttentionInterface.register(ATTN_IMPLEMENTATION, _attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_IMPLEMENTATION, sdpa_mask)
        _registered = True
    model.config._attn_implementation = ATTN_IMPLEMENTATION
    for sub in model.modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and cfg is not model.config and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = ATTN_IMPLEMENTATION
