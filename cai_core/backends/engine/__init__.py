"""The batched decoder of the local backend: shared-prefix ("cascade") attention, grouped K/V
buffers, KV reuse across calls, and the CPU kernels it runs on. See :mod:`.decoder`."""
from .decoder import ATTN_IMPLEMENTATION, EngineParams, KVCache, Output, Work, enable, generate, prefix_groups

__all__ = ["ATTN_IMPLEMENTATION", "EngineParams", "KVCache", "Output", "Work", "enable", "generate", "prefix_groups"]
