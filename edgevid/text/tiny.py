"""A tiny, deterministic, randomly initialised text encoder for tests and toy training runs.

Same BERT code path as MiniLM (`bert.py`), with a hashing tokenizer instead of WordPiece:
lowercase words -> crc32(word) % vocab. crc32, not Python's hash(), because hash() of a str
is salted per process and would change the token ids from run to run.
"""
from __future__ import annotations

import re
import zlib

import torch
from torch import nn

from edgevid.text.base import TextEmbeddings, TextEncoder, mean_pool
from edgevid.text.bert import BertConfig, BertModel

KIND = "tiny"
PAD_ID = 0
BOS_ID = 1  # every prompt starts with it, so "" still has one real token to pool over
NUM_SPECIAL = 2
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")  # words and single punctuation marks


def hash_tokenize(prompt: str, vocab_size: int, max_length: int | None) -> list[int]:
    """[BOS] + one id per word or punctuation mark, truncated to max_length (None: not truncated)."""
    words = _WORD.findall(prompt.lower())
    ids = [BOS_ID] + [NUM_SPECIAL + zlib.crc32(w.encode("utf-8")) % (vocab_size - NUM_SPECIAL) for w in words]
    return ids[:max_length]


class TinyTextEncoder(TextEncoder):
    def __init__(
        self,
        dim: int = 32,
        vocab_size: int = 1000,
        num_layers: int = 1,
        seed: int = 0,
        num_heads: int = 2,
        max_length: int = 64,
    ):
        super().__init__()
        if vocab_size <= NUM_SPECIAL:
            raise ValueError(f"vocab_size must exceed {NUM_SPECIAL} (pad and start ids), got {vocab_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.dim = dim
        self.max_length = max_length
        self.config = {
            "kind": KIND, "dim": dim, "vocab_size": vocab_size, "num_layers": num_layers,
            "seed": seed, "num_heads": num_heads, "max_length": max_length,
        }
        cfg = BertConfig(
            vocab_size=vocab_size, dim=dim, num_layers=num_layers, num_heads=num_heads,
            ffn_dim=4 * dim, max_positions=max_length, type_vocab_size=1, layer_norm_eps=1e-12,
        )
        self.model = BertModel(cfg)
        self._init_weights(seed)
        self.eval()

    def _init_weights(self, seed: int) -> None:
        """BERT's init (normal, std 0.02) from a private generator: independent of the global RNG."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in (self.model.word_embed, self.model.pos_embed, self.model.type_embed):
                param.copy_(torch.randn(param.shape, generator=g) * 0.02)
            for module in self.model.modules():
                if isinstance(module, nn.Linear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=g) * 0.02)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> input_ids (B, L) int64, mask (B, L) bool, padded with PAD_ID to the longest."""
        rows = [hash_tokenize(p, self.model.cfg.vocab_size, self.max_length) for p in prompts]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)  # (B, L)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != PAD_ID

    def num_tokens(self, prompt: str) -> int:
        return len(hash_tokenize(prompt, self.model.cfg.vocab_size, None))

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        tokens = self.model(ids, mask)  # (B, L, D)
        return TextEmbeddings(tokens=tokens, mask=mask, pooled=mean_pool(tokens, mask))
