"""A small BERT encoder in plain torch (Devlin et al. 2019, post-LayerNorm Transformer).

Used with the all-MiniLM-L6-v2 weights (`minilm.py`) and, with a tiny random config and a
hashing tokenizer, as the test encoder (`tiny.py`): one code path for both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgevid.models.blocks import key_bias


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522  # BERT uncased WordPiece vocabulary
    dim: int = 384  # all-MiniLM-L6-v2 hidden size
    num_layers: int = 6
    num_heads: int = 12  # head dim 32
    ffn_dim: int = 1536  # 4 x dim, as in BERT
    max_positions: int = 512  # learned absolute positions
    type_vocab_size: int = 2  # segment embeddings; edgevid always uses segment 0
    layer_norm_eps: float = 1e-12  # BERT's value; 1e-5 changes MiniLM outputs by ~1e-4

    def __post_init__(self):
        if self.dim % self.num_heads != 0:
            raise ValueError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        for name in ("vocab_size", "dim", "num_layers", "num_heads", "ffn_dim", "max_positions", "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"BertConfig.{name} must be positive, got {getattr(self, name)}")


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)  # fused query/key/value: one matmul
        self.attn_out = nn.Linear(cfg.dim, cfg.dim)
        self.attn_norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.dim, cfg.ffn_dim)
        self.ffn_out = nn.Linear(cfg.ffn_dim, cfg.dim)
        self.ffn_norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        """x (B, L, D); attn_mask (B, 1, 1, L) bool, True = key may be attended to."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, D // self.num_heads).unbind(2)  # 3 x (B, L, h, d)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, h, L, d)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, L, d)
        a = a.transpose(1, 2).reshape(B, L, D)  # (B, L, h*d)
        x = self.attn_norm(x + self.attn_out(a))  # post-LN, as in BERT
        h = F.gelu(self.ffn_in(x))  # exact (erf) GELU, BERT's "gelu"
        return self.ffn_norm(x + self.ffn_out(h))


class BertModel(nn.Module):
    """input_ids (B, L) int64 + mask (B, L) bool (or float 1/0) -> last hidden states (B, L, D)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        # Plain parameters, left uninitialised: the loaders assign pretrained tensors or run
        # their own init. (nn.Embedding's normal_ init on the meta device pulls in sympy and
        # torch._refs on first use, ~2 s of cold start.)
        self.word_embed = nn.Parameter(torch.empty(cfg.vocab_size, cfg.dim))  # (V, D)
        self.pos_embed = nn.Parameter(torch.empty(cfg.max_positions, cfg.dim))  # (P, D)
        self.type_embed = nn.Parameter(torch.empty(cfg.type_vocab_size, cfg.dim))  # (S, D)
        self.embed_norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_layers))

    def forward(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        return self.forward_embeds(F.embedding(input_ids, self.word_embed), mask)

    def forward_embeds(self, word_embeds: Tensor, mask: Tensor) -> Tensor:
        """The same, from the word-table rows (B, L, D) already looked up (exported graphs: the
        lookup is a gather the runner does in numpy, from a table it may keep in int8)."""
        B, L, _ = word_embeds.shape
        if L > self.cfg.max_positions:
            raise ValueError(f"sequence of {L} tokens exceeds max_positions={self.cfg.max_positions}")
        x = self.embed_norm(word_embeds + self.pos_embed[:L] + self.type_embed[0])  # (B, L, D)
        # (B, 1, 1, L): padded keys are ignored; a float 1/0 mask as an additive bias (exported graphs)
        attn_mask = mask[:, None, None, :] if mask.dtype == torch.bool else key_bias(mask)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attn_mask)
        return x * mask.unsqueeze(-1).to(x.dtype)  # zero padded rows: batch-size independent output


def state_dict_from_hf(hf: dict[str, Tensor], cfg: BertConfig) -> dict[str, Tensor]:
    """Map a Hugging Face `BertModel` state dict onto `BertModel` above (query/key/value fused).

    The HF pooler (`pooler.dense`) and the `position_ids` buffer are not used and are dropped.
    Raises ValueError listing missing keys when the file is not a BERT checkpoint.
    """
    prefix = "bert." if any(k.startswith("bert.") for k in hf) else ""
    names = {
        "word_embed": "embeddings.word_embeddings.weight",
        "pos_embed": "embeddings.position_embeddings.weight",
        "type_embed": "embeddings.token_type_embeddings.weight",
        "embed_norm.weight": "embeddings.LayerNorm.weight",
        "embed_norm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(cfg.num_layers):
        src, dst = f"encoder.layer.{i}.", f"layers.{i}."
        names.update({
            dst + "attn_out.weight": src + "attention.output.dense.weight",
            dst + "attn_out.bias": src + "attention.output.dense.bias",
            dst + "attn_norm.weight": src + "attention.output.LayerNorm.weight",
            dst + "attn_norm.bias": src + "attention.output.LayerNorm.bias",
            dst + "ffn_in.weight": src + "intermediate.dense.weight",
            dst + "ffn_in.bias": src + "intermediate.dense.bias",
            dst + "ffn_out.weight": src + "output.dense.weight",
            dst + "ffn_out.bias": src + "output.dense.bias",
            dst + "ffn_norm.weight": src + "output.LayerNorm.weight",
            dst + "ffn_norm.bias": src + "output.LayerNorm.bias",
        })
    qkv_src = [
        f"encoder.layer.{i}.attention.self.{p}.{wb}"
        for i in range(cfg.num_layers) for p in ("query", "key", "value") for wb in ("weight", "bias")
    ]
    missing = [prefix + k for k in list(names.values()) + qkv_src if prefix + k not in hf]
    if missing:
        raise ValueError(
            f"not a BERT checkpoint with {cfg.num_layers} layers: {len(missing)} keys missing, "
            f"e.g. {missing[:3]}"
        )
    out = {dst: hf[prefix + src] for dst, src in names.items()}
    for i in range(cfg.num_layers):
        src = f"{prefix}encoder.layer.{i}.attention.self."
        for wb in ("weight", "bias"):
            # (3D, D) / (3D,): rows ordered query, key, value, matching BertLayer's unbind(2)
            out[f"layers.{i}.qkv.{wb}"] = torch.cat([hf[src + f"{p}.{wb}"] for p in ("query", "key", "value")])
    return out


def build_from_state_dict(cfg: BertConfig, state_dict: dict[str, Tensor]) -> BertModel:
    """Build on the meta device and adopt the given tensors: no wasted random initialisation."""
    with torch.device("meta"):
        model = BertModel(cfg)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as e:  # shape mismatch / unexpected keys: a wrong or corrupt file
        raise ValueError(f"weights do not match {cfg}: {str(e).splitlines()[0]}") from e
    return model.eval()
