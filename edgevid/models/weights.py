"""Saving and loading one network as a folder: config.json + model.safetensors.

Loading never executes code (safetensors only), and every failure is a ValueError whose
message names the folder and says what is wrong.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from edgevid.config import config_from_dict, config_to_dict
from edgevid.io.atomic import atomic_save_safetensors, atomic_write_text

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
M = TypeVar("M", bound=torch.nn.Module)


def save_component(module: torch.nn.Module, config, folder: str | Path) -> Path:
    """Write `folder/config.json` (with `_class_name`) and `folder/model.safetensors`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"_class_name": type(module).__name__, **config_to_dict(config)}
    atomic_write_text(folder / CONFIG_NAME, json.dumps(data, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    atomic_save_safetensors(state, folder / WEIGHTS_NAME)
    return folder


def load_component(cls: type[M], config_cls, folder: str | Path, **kwargs) -> M:
    """Build `cls(config)` from `folder/config.json` and load `folder/model.safetensors` strictly."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder {folder} does not exist")
    data = read_json(folder / CONFIG_NAME)
    name = data.pop("_class_name", cls.__name__)
    if name != cls.__name__:
        raise ValueError(f"{folder}: config is for {name}, expected {cls.__name__}")
    try:
        config = config_from_dict(config_cls, data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{folder / CONFIG_NAME}: invalid config ({e})") from None
    module = cls(config, **kwargs)
    load_state_strict(module, read_safetensors(folder / WEIGHTS_NAME), folder)
    return module


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt JSON file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"corrupt JSON file {path}: expected an object")
    return data


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"corrupt weights file {path}: {e}") from None


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str | Path) -> None:
    """load_state_dict with a one-line explanation when weights and config disagree."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise ValueError(f"weights in {where} do not match the config: " + ", ".join(parts))
    module.load_state_dict(state)
