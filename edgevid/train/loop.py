"""The one explicit optimisation loop, shared by VAE and text-to-video training.

What differs between tasks is `step_fn(step) -> (loss, logs)`: it builds the step's batch
deterministically from (seed, step) and calls a loss function from outside the loop. Because
data and noise depend only on the step number, resuming from a checkpoint continues with
exactly the same state as an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

from edgevid.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from edgevid.train.ema import EMA

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


_NO_DEFAULTS: dict = {}


def _same_run_config(stored, new, defaults=_NO_DEFAULTS) -> bool:
    """Equal, except that `new` may have keys `stored` lacks: config fields added by a later
    edgevid, whose defaults keep the old behaviour (a run must stay resumable across upgrades).
    Where `defaults` (same nesting) knows such a field, its value must be the default: a
    resumed run must not quietly switch a new option on."""
    if isinstance(stored, dict) and isinstance(new, dict):
        defaults = defaults if isinstance(defaults, dict) else _NO_DEFAULTS
        same = all(k in new and _same_run_config(v, new[k], defaults.get(k)) for k, v in stored.items())
        added = [k for k in new if k not in stored]
        return same and all(k not in defaults or new[k] == defaults[k] for k in added)
    return stored == new


def prepare_run_dir(run_dir: Path, resolved_config: dict, resume: bool, defaults: dict | None = None) -> Path:
    """Create the run folder and write the resolved config, or check it matches when resuming.

    Sections of `resolved_config` may be config dataclasses: they are stored as dicts, and
    their class's defaults join `defaults` (other sections' default values, same nesting): a
    field missing from the stored config must have its default in the new one."""
    from edgevid.config import config_to_dict

    run_dir = Path(run_dir)
    defaults = dict(defaults or {})
    for name, section in resolved_config.items():
        if dataclasses.is_dataclass(section):
            defaults[name] = config_to_dict(type(section)())
    resolved_config = {name: config_to_dict(section) if dataclasses.is_dataclass(section) else section
                       for name, section in resolved_config.items()}
    cfg_path = run_dir / "config.json"
    text = json.dumps(resolved_config, indent=2, sort_keys=True) + "\n"
    if resume:
        if not cfg_path.is_file():
            raise ValueError(f"--resume: {run_dir} holds no run (no config.json)")
        defaults = json.loads(json.dumps(defaults))  # tuples -> lists, as stored
        if not _same_run_config(json.loads(cfg_path.read_text()), json.loads(text), defaults):
            raise ValueError(f"--resume: the config differs from the one in {cfg_path}; use the same flags or a new run dir")
        return run_dir
    if (run_dir / "checkpoints").exists():
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it or choose another run dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(text)
    return run_dir


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Linear warm-up, then constant or cosine decay to 10% of base_lr."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_loop(*, run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None,
               step_fn: StepFn, total_steps: int, base_lr: float, warmup_steps: int, lr_schedule: str,
               grad_clip: float, checkpoint_every: int, log_every: int, bf16: bool = False,
               resume: bool = False, progress: bool = True, desc: str = "train") -> int:
    """Run (or resume) optimisation until `total_steps`; returns the number of steps done now."""
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is not None:
            start = int(load_checkpoint(ckpt, model, optimizer, ema.model if ema else None)["step"])
    device_type = next(model.parameters()).device.type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else nullcontext()
    log_path = Path(run_dir) / "log.jsonl"
    from tqdm.auto import tqdm

    bar = tqdm(range(start, total_steps), initial=start, total=total_steps, desc=desc, disable=not progress,
               dynamic_ncols=True)
    model.train()
    tick, tick_step = time.perf_counter(), start
    for step in bar:
        lr = lr_at(step, base_lr, warmup_steps, total_steps, lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # lr_scale: per-group multiplier (train_t2v's spatial layers)
        with autocast:
            loss, logs = step_fn(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}; lower the learning rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update(model, step)
        done = step + 1
        if done % log_every == 0 or done == total_steps:
            now = time.perf_counter()
            record = {"step": done, "loss": loss.item(), "lr": lr, "grad_norm": grad_norm.item(), **logs,
                      "sec_per_step": (now - tick) / (done - tick_step)}
            tick, tick_step = now, done
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.4f}")
        if done % checkpoint_every == 0 or done == total_steps:
            save_checkpoint(run_dir, done, model, optimizer, ema.model if ema else None)
    bar.close()
    return total_steps - start


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The RNG of one step: a pure function of (seed, step), so resumed runs replay exactly."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) % (2**63))
    return g
