"""What the commands share: the help's examples, the error type, the limits of the flags and their
checks, threads, and the training commands' flags (train, distill, compress: flags -> frozen train
config -> run folder).

Light imports only (`edgevid --help` loads this module); torch and the models load inside the functions.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path


EXAMPLES = """examples:
  edgevid generate "a red circle bouncing on a blue background" -o out.mp4
  edgevid generate "two green squares drifting left" -o wide.mp4 --width 448 --height 256 --seed 3
  edgevid dataset preview -o preview.mp4 --num 4
  edgevid eval --limit 20 --output shapesbench.json       # ground-truth prompt adherence
  edgevid compare shipped.json mine.json                   # paired difference of two eval results
  edgevid train vae --steps 3000 --crop-size 64 --buckets 1x256x256,9x256x256 --run-dir runs/vae --output models/vae
  edgevid train t2v --vae models/vae --steps 4000 --fps 24 --num-clips 600 --cache-latents --run-dir runs/t2v --output models/t2v
  edgevid train t2v --vae models/vae --run-dir runs/t2v --output models/t2v --resume
  edgevid animate still.png -o out.mp4 --model models/i2v   # image-to-video (MobileVD)
  edgevid train i2v --vae edgevid/weights/default/vae --steps 3000 --num-clips 1500 --cache-latents --fps 24 --run-dir runs/i2v --output models/i2v
  edgevid export --format executorch -o out/default-et       # on-device artifacts + manifest.json
  edgevid run-exported out/default-et "a red circle moving right" -o out.mp4
"""


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# Limits of the flags, each with its reason. The model's own rules (multiples of 32, 1 + 4k frames)
# are checked by the pipeline; whether the size fits this machine by check_generate_resources.
MAX_FRAMES = 1_000_001  # 11.6 hours at 24 fps; far past anything a model was trained for
MAX_SIDE = {".mp4": 16_384, ".gif": 65_535}  # libx264's limit a side; GIF stores 16-bit sizes
MAX_STEPS = 1000  # rectified-flow samplers need 1-50; more is a typo, not a better video
MAX_FPS = {".mp4": 1000, ".gif": 50}  # GIF stores delays in 1/100 s and players clamp below 2/100
SEED_RANGE = (-2**63, 2**64 - 1)  # torch.Generator.manual_seed's


SHOW_ESTIMATE_S = 30  # longer than this: print the estimate first and show a progress bar


def add_precision_flag(p: argparse.ArgumentParser, extra: str = "") -> None:
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="denoiser and decoder precision: auto (the default, or $EDGEVID_PRECISION) is bf16 on a CPU "
                        "with native bf16 (AVX512-BF16/AMX), where it is ~1.6x faster, and fp32 elsewhere." + extra)


def _check_output_path(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise CLIError(f"output must end in .mp4 or .gif, got {path!r}")
    if out.is_dir():
        raise CLIError(f"output {path} is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"output folder {parent} is not writable")
    return out


def _check_int(args, name: str, lo: int, hi: int, why: str = "") -> None:
    v = getattr(args, name)
    if v is not None and not lo <= v <= hi:
        raise CLIError(f"--{name.replace('_', '-')} must be in [{lo}, {hi}]{f' ({why})' if why else ''}, got {v}")


def _check_float(args, name: str, lo: float, hi: float, what: str) -> None:
    import math

    v = getattr(args, name)
    if v is not None and not (math.isfinite(v) and lo <= v <= hi):
        raise CLIError(f"--{name} must be a {what} in [{lo:g}, {hi:g}], got {v}")


def _cores() -> int:
    """CPU cores this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None and not 1 <= threads <= _cores():
        raise CLIError(f"--threads must be in [1, {_cores()}] (this machine's cores), got {threads}")
    torch.set_num_threads(threads or _cores())


def _is_i2v_model(model_dir: Path) -> bool:
    import json

    try:
        return json.loads((model_dir / "model_index.json").read_text()).get("_class_name") == "EdgeVidImg2VidPipeline"
    except (OSError, ValueError):
        return False  # from_pretrained says what is wrong


def check_work_resources(what: str, est, fix: str) -> None:
    """The long commands (eval, train, distill, compress): refuse in one line when the estimated
    peak memory (an edgevid.estimate.WorkEstimate) exceeds what is available, naming `fix`;
    print the estimate when the work takes longer than SHOW_ESTIMATE_S."""
    from edgevid.estimate import available_memory, format_bytes

    available = available_memory()
    if available is not None and est.peak_bytes > available:
        raise CLIError(f"{what} needs ~{format_bytes(est.peak_bytes)} of memory (estimated), "
                       f"{format_bytes(available)} is available: {fix}")
    if est.seconds > SHOW_ESTIMATE_S:
        print(f"edgevid: {what} will take {est.describe()} (an estimate)", file=sys.stderr, flush=True)


def _check_clip_memory(what: str, frames: int, height: int, width: int, factor: float) -> None:
    """Refuse clips whose frames alone (float32, times `factor` for the work on them) exceed memory."""
    from edgevid.estimate import available_memory, format_bytes

    need = frames * height * width * 3 * 4 * factor
    available = available_memory()
    if available is not None and need > available:
        raise CLIError(f"{what} needs more than {format_bytes(need)} of memory, {format_bytes(available)} is available; "
                       f"use fewer or smaller frames")


# ----------------------------------------------------------------------------- train, distill, compress
def _add_common_train_flags(p: argparse.ArgumentParser, lr_and_bf16: bool = True) -> None:
    p.add_argument("--run-dir", required=True, help="run folder: resolved config, log.jsonl, checkpoints")
    p.add_argument("--output", help="write the trained model here when done")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--steps", type=int, help="total optimisation steps")
    p.add_argument("--batch-size", type=int)
    if lr_and_bf16:
        p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--buckets", help="comma-separated FRAMESxHEIGHTxWIDTH, e.g. 1x64x64,9x64x64,17x64x96")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--data", default="procedural", help="'procedural' or a folder of mp4 + captions.jsonl")
    p.add_argument("--seed", type=int)
    if lr_and_bf16:
        p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--fps", type=int, help="frame rate of the training clips (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _given(args, *names: str) -> dict:
    """The flags among `names` that were given (not None), by their config field names."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _train_common(args, cfg_cls, preset_defaults: dict):
    """Flags -> a frozen train config (only the flags given override the defaults)."""
    import math

    run_dir = Path(args.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CLIError(f"--run-dir {args.run_dir} is a file, not a folder")
    for name, hi in (("steps", 10**9), ("batch_size", 4096), ("checkpoint_every", 10**9), ("fps", 1000)):
        _check_int(args, name, 1, hi)
    _check_int(args, "seed", *SEED_RANGE)
    for name, v in preset_defaults.items():  # the command's own float flags: finite and >= 0 (t_mean: any sign)
        if isinstance(v, float) and not (math.isfinite(v) and (v >= 0 or name == "t_mean")):
            raise CLIError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
    lr = getattr(args, "lr", None)
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 1):
        raise CLIError(f"--lr must be a number in (0, 1], got {lr}")
    changes = dict(preset_defaults)
    for flag, field in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed"),
                        ("checkpoint_every", "checkpoint_every"), ("fps", "fps")):
        v = getattr(args, flag, None)
        if v is not None:
            changes[field] = v
    if getattr(args, "bf16", False):
        changes["bf16"] = True
    if args.buckets:
        changes["buckets"] = _parse_buckets(args.buckets)
    cfg = dataclasses.replace(cfg_cls(), **changes)
    batch = getattr(cfg, "batch_size", 1)
    for frames, height, width in getattr(cfg, "buckets", ()):
        _check_clip_memory(f"--buckets {frames}x{height}x{width} (batch {batch})", batch * frames, height, width,
                           factor=64)  # a training step holds tens of activations per input value
    return cfg


def _parse_buckets(text: str) -> tuple[tuple[int, int, int], ...]:
    try:
        buckets = tuple(tuple(int(x) for x in item.lower().split("x")) for item in text.split(",") if item.strip())
    except ValueError:
        raise CLIError(f"--buckets must look like 1x64x64,9x64x96, got {text!r}") from None
    if not buckets or any(len(b) != 3 or min(b) < 1 for b in buckets):
        raise CLIError(f"--buckets must look like 1x64x64,9x64x96, got {text!r}")
    return buckets


def _device(args) -> str:
    import torch

    _set_threads(args.threads)
    if args.device:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise CLIError("--device cuda requested but no CUDA device is available")
        return args.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _source(args, fps: int, seed: int):
    from edgevid.data import ProceduralClips, VideoFolderClips

    if args.data == "procedural":
        return ProceduralClips(split="train", seed=seed, fps=fps), {"kind": "procedural", "split": "train", "seed": seed}
    return VideoFolderClips(args.data, fps=fps, seed=seed), {"kind": "video_folder", "root": str(args.data)}


def _check_training(what: str, device: str, args, total_steps: int, estimate) -> None:
    """check_work_resources for a training command: `estimate(steps, available memory)` over the
    steps still to run (a resumed run continues from its latest checkpoint). The estimate is of
    this machine's CPU: skipped on a GPU."""
    from edgevid.estimate import available_memory

    steps = total_steps - _steps_done(args)
    if device == "cpu" and steps > 0:
        check_work_resources(what, estimate(steps, available_memory()),
                             "use a smaller --batch-size or smaller buckets (--buckets, --crop-size)")


def _steps_done(args) -> int:
    if not args.resume:
        return 0
    from edgevid.train.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(Path(args.run_dir))
    try:
        return int(ckpt.name.split("-")[1]) if ckpt is not None else 0
    except (IndexError, ValueError):
        return 0


def _run_checkpoint(args) -> tuple[Path, dict]:
    """--export-checkpoint: the run's latest checkpoint and its config.json (with a 'unet' section)."""
    from edgevid.models.weights import read_json
    from edgevid.train.checkpoint import latest_checkpoint

    if not args.output:
        raise CLIError("--export-checkpoint needs --output")
    ckpt = latest_checkpoint(Path(args.run_dir))
    if ckpt is None:
        raise CLIError(f"--export-checkpoint: {args.run_dir} holds no checkpoint")
    run_cfg = read_json(Path(args.run_dir) / "config.json")
    if not isinstance(run_cfg.get("unet"), dict):
        raise CLIError(f"--export-checkpoint: {Path(args.run_dir) / 'config.json'} has no 'unet' config")
    return ckpt, run_cfg


def _export_checkpoint(args, vae, text_encoder, defaults) -> None:
    """The EMA UNet of a train t2v / distill run's latest checkpoint -> a pipeline folder (the run's own UNet config)."""
    from edgevid.config import UNetConfig, config_from_dict
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.models.weights import load_state_strict, read_safetensors
    from edgevid.pipeline import EdgeVidPipeline

    ckpt, run_cfg = _run_checkpoint(args)
    unet = SpatioTemporalUNet(config_from_dict(UNetConfig, run_cfg["unet"], f"{args.run_dir}/config.json unet"))
    load_state_strict(unet, read_safetensors(ckpt / "ema.safetensors"), ckpt)
    EdgeVidPipeline(vae.cpu(), unet.eval(), text_encoder.cpu(), defaults).save_pretrained(args.output)
    print(f"saved the EMA weights of {ckpt} as a pipeline to {args.output}")


def shrunk_unet(unet, target: str):
    """`unet` shrunk to a preset or a search plan key (--shrink-to of train t2v and distill), weights inherited."""
    from edgevid.config import UNET_PRESETS
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.search.quality import inherit_backbone
    from edgevid.search.space import UNetPlan

    try:
        if target in UNET_PRESETS:
            plan = UNetPlan.from_config(UNET_PRESETS[target], spatial=True)
        else:
            plan = UNetPlan.from_key(target if "+" in target else target + "+" +
                                     UNetPlan.from_config(unet.config, spatial=True).spatial.key)
        shrunk = SpatioTemporalUNet(plan.to_config(unet.config))
        inherit_backbone(unet, shrunk, keep_temporal=True)
    except ValueError as e:
        raise CLIError(f"--shrink-to {target}: {e}") from None
    return shrunk


def load_compiled_or_fail(pipe) -> None:
    """`--compiled`: swap in the `edgevid compile` packages of this model, machine, thread count
    and precision, or stop with the command that builds them (never compiles here)."""
    from edgevid.compiled import load_compiled_unet

    if not load_compiled_unet(pipe):
        raise CLIError(f"--compiled: no compiled {pipe.precision} denoiser for this model, machine and thread "
                       "count; run `edgevid compile` (with the same --model, --threads and --precision) first")
