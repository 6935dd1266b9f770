"""Memoise text encodings per prompt string (training captions repeat; CFG's "" is reused)."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

from edgevid.text.base import TextEmbeddings, TextEncoder, pad_stack, validate_prompts


class PromptCache:
    """Wraps a TextEncoder; `encode` returns the same TextEmbeddings, on the CPU, from a cache.

    Each prompt is stored once as (tokens (L_i, D), pooled (D,)) on the CPU; a batch is
    re-assembled by right-padding with zeros, which equals the encoder's own batched output
    because encoders zero padded rows and attention ignores padded keys. Prompts not yet
    cached are encoded together in one batch. `max_entries` bounds memory (least recently
    used entries are evicted); None = unbounded.
    """

    def __init__(self, encoder: TextEncoder, max_entries: int | None = 10_000):
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, got {max_entries}")
        self.encoder = encoder
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, prompt: str) -> bool:
        return prompt in self._entries

    def clear(self) -> None:
        self._entries.clear()

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        prompts = validate_prompts(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._entries))  # unique, in order
        self.hits += len(prompts) - len(missing)  # a repeat inside one batch is encoded once: a hit
        self.misses += len(missing)
        if missing:
            out = self.encoder.encode(missing)
            for i, p in enumerate(missing):
                n = int(out.mask[i].sum())  # real tokens come first (right padding)
                self._entries[p] = (out.tokens[i, :n].cpu().clone(), out.pooled[i].cpu().clone())
        entries = [self._entries[p] for p in prompts]
        for p in prompts:  # mark as recently used, then evict beyond the bound
            self._entries.move_to_end(p)
        while self.max_entries is not None and len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

        lengths = torch.tensor([t.shape[0] for t, _ in entries])  # (B,)
        tokens = pad_stack([t for t, _ in entries])  # (B, L, D)
        mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, L)
        pooled = torch.stack([p for _, p in entries])  # (B, D)
        return TextEmbeddings(tokens=tokens, mask=mask, pooled=pooled)

    __call__ = encode
