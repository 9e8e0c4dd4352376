"""Prepacked bf16 linears and fused RMSNorm (cai_core/backends/cpu_kernels.py): same outputs as
the layers' own forward, and out of the way when training or when weights change."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cai_core.backends.engine import cpu_kernels


def _tiny(dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).to(dtype).eval()


needs_bf16 = pytest.mark.skipif(not cpu_kernels.available(torch.bfloat16, "cpu"), reason="no native bf16 on this CPU")


def test_only_bf16_on_the_cpu_is_packed():
    assert not cpu_kernels.available(torch.float32, "cpu")
    assert not cpu_kernels.available(torch.bfloat16, "cuda")


@needs_bf16
def test_packed_model_gives_the_plain_models_logits():
    plain, packed = _tiny(torch.bfloat16), _tiny(torch.bfloat16)
    n = cpu_kernels.pack_linears(packed)
    assert n == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the head
    ids = torch.randint(0, 128, (3, 9))
    with torch.inference_mode():
        a, b = plain(input_ids=ids).logits, packed(input_ids=ids).logits
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.02)  # bf16 rounding at most
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.95


@needs_bf16
def test_packed_linear_steps_aside_for_gradients_and_changed_weights(monkeypatch):
    layer = nn.Linear(64, 32).to(torch.bfloat16)
    cpu_kernels.pack_linears(layer)
    calls = []
    real = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: (calls.append(1), real(*a))[1])
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        layer(x)
    assert calls == [1]
    y = layer(x.requires_grad_())  # gradients: the ordinary path, and they flow
    y.sum().backward()
    assert layer.weight.grad is not None and calls == [1]
    with torch.no_grad():
        layer.weight.mul_(2)  # e.g. load_state_dict into the same parameter
    with torch.inference_mode():
        torch.testing.assert_close(layer(x.detach()), nn.functional.linear(x.detach(), layer.weight, layer.bias))
    assert calls == [1]  # stale packed copy not used


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_rms_norm_is_exactly_the_models_own(dtype):
    plain, fused = _tiny(dtype), _tiny(dtype)
    assert cpu_kernels.fuse_rms_norms(fused) == 2 * 2 + 1
    ids = torch.randint(0, 128, (2, 11))
    with torch.inference_mode():
        assert torch.equal(plain(input_ids=ids).logits, fused(input_ids=ids).logits)


def test_a_norm_with_another_formula_keeps_its_own_forward():
    class OtherRMSNorm(nn.Module):  # scales before casting back (as OLMo-2 does): not the fused formula
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.rand(16) + 0.5)
            self.variance_epsilon = 1e-6

        def forward(self, x):
            h = x.float()
            return (self.weight.float() * 1.5 * h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)

    m = nn.Sequential(OtherRMSNorm())
    assert cpu_kernels.fuse_rms_norms(m) == 0
    assert "forward" not in vars(m[0])
