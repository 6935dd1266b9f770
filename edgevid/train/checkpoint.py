"""Atomic, resumable checkpoints: safetensors for tensors, JSON for everything else.

run_dir/checkpoints/step-000200/{model,ema,optimizer}.safetensors + state.json, and
run_dir/checkpoints/latest naming the newest complete one. A checkpoint folder is written
under a temporary name and renamed when complete, and `latest` is replaced atomically, so
a crash mid-write leaves the previous checkpoint intact and never a corrupt one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from edgevid.io.atomic import atomic_save_safetensors, atomic_write_text
from edgevid.models.weights import load_state_strict, read_json, read_safetensors


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema: torch.nn.Module | None = None, extra: dict | None = None, keep: int = 2) -> Path:
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = ckpt_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    atomic_save_safetensors(_cpu(model.state_dict()), tmp / "model.safetensors")
    if ema is not None:
        atomic_save_safetensors(_cpu(ema.state_dict()), tmp / "ema.safetensors")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    atomic_save_safetensors(opt_tensors, tmp / "optimizer.safetensors")
    atomic_write_text(tmp / "state.json", json.dumps({"step": step, "optimizer": opt_meta, **(extra or {})}, indent=2))
    final = ckpt_root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    atomic_write_text(ckpt_root / "latest", name + "\n")
    for old in sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise ValueError(f"checkpoint {path} named by {pointer} is missing or incomplete")
    return path


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    ema: torch.nn.Module | None = None) -> dict:
    """Restore model, optimizer and EMA in place; returns state.json (with "step"). optimizer=None
    reads the weights only (scoring or exporting a checkpoint: no need to rebuild the run's
    parameter groups)."""
    path = Path(path)
    state = read_json(path / "state.json")
    load_state_strict(model, read_safetensors(path / "model.safetensors"), path)
    if ema is not None:
        load_state_strict(ema, read_safetensors(path / "ema.safetensors"), path)
    if optimizer is not None:
        optimizer.load_state_dict(_unflatten_optimizer(read_safetensors(path / "optimizer.safetensors"), state["optimizer"]))
    return state


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """optimizer.state_dict() -> ({"<param>.<key>": tensor}, JSON metadata)."""
    tensors, scalars = {}, {}
    for idx, per_param in sd["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for flat, value in [*tensors.items(), *meta.get("scalars", {}).items()]:
        idx, key = flat.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
