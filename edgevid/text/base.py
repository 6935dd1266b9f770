"""The common text-encoder interface: list[str] -> TextEmbeddings (tokens, mask, pooled)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class TextEmbeddings:
    tokens: Tensor  # (B, L, D) last hidden states; rows at padded positions are zero
    mask: Tensor  # (B, L) bool, True = real token
    pooled: Tensor  # (B, D) mean over real tokens, L2-normalised (the sentence embedding)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "TextEmbeddings":
        """Move to a device / cast the float tensors (the mask stays bool)."""
        return TextEmbeddings(
            tokens=self.tokens.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
        )

    def __len__(self) -> int:
        return self.tokens.shape[0]


def validate_prompts(prompts) -> list[str]:
    """A non-empty list (or tuple) of str. "" is allowed: it is the unconditional prompt for CFG."""
    if isinstance(prompts, str):
        raise ValueError(f"prompts must be a list of strings; wrap a single prompt as [{prompts!r}]")
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise ValueError(f"every prompt must be a str, got {type(bad[0]).__name__}: {bad[0]!r}")
    for p in prompts:
        check_unicode(p)
    return list(prompts)


def check_unicode(prompt: str) -> str:
    """Refuse text that is not valid Unicode: lone surrogates, which is how Python hands over the
    bytes of a command-line argument that is not UTF-8 (PEP 383), and which no tokenizer takes."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        ch = prompt[e.start]
        byte = f"byte 0x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else f"U+{ord(ch):04X}"
        raise ValueError(f"prompt is not valid UTF-8 text ({byte} at character {e.start}); "
                         f"write it in UTF-8") from None
    return prompt


def mean_pool(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean over real tokens, then L2-normalise (sentence-transformers' Pooling + Normalize).

    tokens (B, L, D), mask (B, L) bool -> (B, D).
    """
    m = mask.unsqueeze(-1).to(tokens.dtype)  # (B, L, 1)
    summed = (tokens * m).sum(dim=1)  # (B, D)
    counts = m.sum(dim=1).clamp_min(1e-9)  # (B, 1); sentence-transformers clamps the same way
    return F.normalize(summed / counts, p=2, dim=-1)


def pad_stack(rows: list[Tensor], length: int | None = None) -> Tensor:
    """Stack per-prompt token tensors (L_i, D) into (B, L, D), zero-padded on the right."""
    length = max(r.shape[0] for r in rows) if length is None else length
    out = rows[0].new_zeros(len(rows), length, rows[0].shape[-1])  # (B, L, D)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


class TextEncoder(nn.Module):
    """Base class: subclasses set `dim` and `config`, and implement `_encode`.

    `encode` validates the prompts and runs without autograd (torch.no_grad rather than
    inference_mode, so the outputs can still be fed to a network being trained).
    """

    dim: int
    config: dict
    max_length: int  # prompts longer than this many tokens are truncated

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        prompts = validate_prompts(prompts)
        with torch.no_grad():
            return self._encode(prompts)

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        raise NotImplementedError

    def num_tokens(self, prompt: str) -> int:
        """Tokens of `prompt` (special tokens included) before truncation to `max_length`: more
        than max_length means the encoder sees only the first max_length."""
        raise NotImplementedError

    def forward(self, prompts: list[str]) -> TextEmbeddings:
        return self.encode(prompts)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
