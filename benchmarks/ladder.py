"""The learnability ladder (issue 16): fixed-compute training rungs that choose the recipe.

    python benchmarks/ladder.py --rung a --recipe pooled --run-dir ~/runs/ladder/a_pooled --threads 1
    python benchmarks/ladder.py --rung a --recipe pooled --run-dir ~/runs/ladder/a_pooled --eval-only
    python benchmarks/ladder.py --rung b --model campaign/b_teacher-init --guidance 7.5 --run-dir ~/runs/ladder/g75

Each rung trains a text-to-video UNet from scratch (or from `--init-from`) for a fixed number
of steps on a narrowed procedural world, through the shipped teacher's frozen VAE encoder and
MiniLM, then scores its samples with ShapesBench's coherent-object scorer on hold-out specs of
the same world:

    a  images, 1 object, solid backgrounds          (1 x 256 x 256)
    b  images, the full world                       (1 x 256 x 256)
    c  short videos, 1 object, solid backgrounds    (17 x 256 x 256)
    d  short videos, the full world                 (17 x 256 x 256)

Every rung's step count is sized to <= 20 minutes on one core of the project machine. Images
are scored on colour, shape, count and background (adherence = their mean; motion has no
meaning in a still); videos on all five attributes. The result (settings, wall time, scores)
goes to RUN_DIR/ladder.json; docs/LADDER.md keeps the table of every variant tried.

A recipe is a named set of changes to the `small` UNet and to the training config (RECIPES);
add one to try an idea, and run it on the rung it should move.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclasses.dataclass(frozen=True)
class Rung:
    frames: int
    size: int
    max_objects: int
    backgrounds: tuple[str, ...] | None  # None = every background type
    steps: int  # fixed compute: <= 20 min on one core
    batch_size: int
    # A fixed set of clips whose VAE latents are encoded once into a cache that every recipe
    # of the rung shares (at 256 x 256 the VAE encoder costs as much as a UNet step): recipes
    # then compare at equal data and the rung's minutes are denoiser minutes.
    num_clips: int


# 256 x 256, the default generation size: at 128 x 128 the shipped VAE alone caps shape at 0.52
# (rung a) and 0.37 (rung b) on ground truth, at 256 x 256 it allows 0.92 / 0.96 (docs/LADDER.md).
RUNGS: dict[str, Rung] = {
    "a": Rung(1, 256, 1, ("solid",), steps=600, batch_size=16, num_clips=4000),
    "b": Rung(1, 256, 3, None, steps=600, batch_size=16, num_clips=6000),
    "c": Rung(17, 256, 1, ("solid",), steps=400, batch_size=4, num_clips=800),
    "d": Rung(17, 256, 3, None, steps=400, batch_size=4, num_clips=1200),
}

@dataclasses.dataclass(frozen=True)
class Recipe:
    unet: dict = dataclasses.field(default_factory=dict)  # UNetConfig changes to "small"
    train: dict = dataclasses.field(default_factory=dict)  # TrainConfig changes to BASE_TRAIN
    # Start from this model's UNet (a shipped name or folder) instead of from scratch; modules
    # the recipe adds (e.g. the pooled-text path) start at their zero init.
    init: str | None = None
    # ProceduralClips changes (e.g. canonical_fraction); they change the captions, so such a
    # recipe gets a latent cache of its own (the cache stores each clip's caption).
    data: dict = dataclasses.field(default_factory=dict)


# The baseline is the v0.7 teacher's architecture at the rung's batch size and a from-scratch
# learning rate.
RECIPES: dict[str, Recipe] = {
    "baseline": Recipe(),
    "pooled": Recipe(unet={"pooled_text": True}),
    "pooled-attn-full": Recipe(unet={"pooled_text": True, "spatial_attention": (True, True, True)}),
    "pooled-t-high": Recipe(unet={"pooled_text": True}, train={"t_mean": 0.5}),
    "pooled-lr1e-3": Recipe(unet={"pooled_text": True}, train={"lr": 1e-3}),
    # SnapGen-V's "initialise from a compact backbone": the shipped teacher's spatial layers,
    # trained on 91 k video samples, fine-tuned on the rung's images.
    "teacher-init": Recipe(init="teacher", train={"lr": 2e-4}),
    "teacher-init-pooled": Recipe(unet={"pooled_text": True}, init="teacher", train={"lr": 2e-4}),
    # Spatial self- and cross-attention also at full latent resolution (32 x 32 at 256 px), where
    # the objects' sharp, high-energy latents are (docs/LADDER.md, "Where the error is").
    "teacher-init-attn-full": Recipe(unet={"spatial_attention": (True, True, True)}, init="teacher",
                                     train={"lr": 2e-4}),
    # A 1-layer trainable text refiner over MiniLM's tokens (attribute binding), identity at start.
    "teacher-init-refiner": Recipe(unet={"text_refiner_layers": 1}, init="teacher", train={"lr": 2e-4}),
    # Loss weight 1 + 4 on the latent cells objects cover (and their edges): objects are a small
    # share of each frame, textured backgrounds take the rest of the loss.
    "teacher-init-fg4": Recipe(init="teacher", train={"lr": 2e-4, "foreground_weight": 4.0}),
    "teacher-init-lr5e-4": Recipe(init="teacher", train={"lr": 5e-4}),
    "teacher-init-t-high": Recipe(init="teacher", train={"lr": 2e-4, "t_mean": 0.5}),
    # The two 600-step leads together: t-high had the best sampled score, fg4 the lowest object error.
    "teacher-init-fg4-t-high": Recipe(init="teacher", train={"lr": 2e-4, "foreground_weight": 4.0, "t_mean": 0.5}),
    # Four times the width inside the full-resolution ResBlocks (32 -> 128 between their convs), the
    # teacher widened into it exactly (Net2WiderNet): capacity where the objects' spiky latents are.
    "teacher-init-wide128-fg4-t-high": Recipe(unet={"res_hidden_channels": (128, 64, 160)}, init="teacher",
                                             train={"lr": 2e-4, "foreground_weight": 4.0, "t_mean": 0.5}),
    # Each latent channel's loss weighted by the decoder's sensitivity to it (alone, and on fg4-t-high):
    # three of the VAE's eight channels are invisible after decoding yet carried 60-80 % of the flow loss.
    "teacher-init-chw": Recipe(init="teacher", train={"lr": 2e-4, "channel_weighting": "decoder"}),
    "teacher-init-fg4-t-high-chw": Recipe(init="teacher", train={"lr": 2e-4, "foreground_weight": 4.0, "t_mean": 0.5,
                                                                "channel_weighting": "decoder"}),
    # Caption curriculum: half the clips worded canonically (the evaluation's plain wording),
    # half with the synonyms and templates (1-4 words per colour, 3-5 per shape, 3 templates).
    "teacher-init-canon50": Recipe(init="teacher", train={"lr": 2e-4}, data={"canonical_fraction": 0.5}),
    # SnapGen-V's second stage: a video rung started from an image backbone (--init-from, e.g. the
    # rung-(b) campaign EMA); the temporal layers at lr 2e-4, the spatial layers at a tenth of it.
    "video-stage": Recipe(init="teacher", train={"lr": 2e-4, "spatial_lr_scale": 0.1}),
    # ... with the loss where the video shows it: decoder channel weights, and 1 + 4 on the (moving) objects' cells.
    "video-stage-fg4-chw": Recipe(init="teacher", train={"lr": 2e-4, "spatial_lr_scale": 0.1, "foreground_weight": 4.0,
                                                         "channel_weighting": "decoder"}),
    "video-stage-frozen": Recipe(init="teacher", train={"lr": 2e-4, "spatial_lr_scale": 0.0}),
}
BASE_TRAIN = dict(lr=5e-4, warmup_steps=100, ema_decay=0.995, text_dropout=0.1, lr_schedule="cosine",
                  checkpoint_every=200, log_every=25)

EVAL_SPECS = 48  # hold-out specs of the rung's world; ~3 min of sampling for an image rung
EVAL_STEPS, EVAL_GUIDANCE = 25, 5.0  # the teacher's sampler


def rung_source(rung: Rung, split: str, fps: int = 24, **data):
    from edgevid.data import ProceduralClips

    return ProceduralClips(split=split, seed=0, fps=fps, camera_prob=0.0 if rung.max_objects == 1 else 0.3,
                           max_objects=rung.max_objects, backgrounds=rung.backgrounds, **data)


def rung_specs(rung: Rung, n: int):
    """n hold-out scenes of the rung's world, camera-free, with canonical captions."""
    from edgevid.data.captions import canonical_caption
    from edgevid.data.splits import sample_spec
    from edgevid.data.world import BACKGROUNDS

    rng = np.random.default_rng(12345)
    specs = [sample_spec(rng, "holdout", camera_prob=0.0, max_objects=rung.max_objects,
                         backgrounds=rung.backgrounds or BACKGROUNDS) for _ in range(n)]
    return [(s, canonical_caption(s)) for s in specs]


@dataclasses.dataclass(frozen=True)
class Sampler:
    """How the eval samples are drawn: the teacher's sampler unless a sampler experiment says otherwise.

    start_t < 1 is a diagnostic, not a generation (SDEdit): the spec's ground truth is encoded,
    noised to start_t with the seed's noise, and denoised from there on the part of the time grid
    below start_t. Scored like a sample, it says how much of the video survives the model's
    denoising from that noise level on: where in the trajectory the objects are lost.
    guidance_min_t > 0 applies guidance only above that t (GuidedVelocity.guidance_min_t)."""
    steps: int = EVAL_STEPS
    guidance: float = EVAL_GUIDANCE
    shift: float = 1.0
    start_t: float = 1.0
    guidance_min_t: float = 0.0

    def __call__(self, pipe, caption: str, rung: Rung, seed: int, spec=None):
        if self.start_t >= 1.0 and not self.guidance_min_t:
            return pipe(caption, num_frames=rung.frames, height=rung.size, width=rung.size,
                        num_inference_steps=self.steps, guidance_scale=self.guidance, shift=self.shift,
                        generator=torch.Generator().manual_seed(seed)).frames[0]
        from edgevid.data.world import render_video
        from edgevid.flow.sample import sample_euler
        from edgevid.flow.schedule import time_grid

        generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            velocity = pipe.encode_prompt([caption], "", self.guidance, self.guidance_min_t)
            if self.start_t >= 1.0:  # the pipeline's own noise and grid
                noise = pipe.prepare_latents(1, rung.frames, rung.size, rung.size, generator)
                x = pipe.denoise(velocity, noise, self.steps, self.shift)
            else:
                if spec is None:
                    raise ValueError("a start_t < 1 sampler needs the spec (its ground truth is the start)")
                video = torch.from_numpy(render_video(spec, rung.frames, rung.size, rung.size, 24))  # (T, H, W, 3) uint8
                video = video.permute(3, 0, 1, 2)[None].float().div(127.5).sub(1.0)  # (1, 3, T, H, W) in [-1, 1]
                grid = time_grid(self.steps, self.shift)
                grid = torch.cat([torch.tensor([self.start_t], dtype=grid.dtype), grid[grid < self.start_t]])
                x0 = pipe.vae.encode_latents(video)
                noise = torch.randn(x0.shape, generator=generator)
                x = sample_euler(velocity, (1 - self.start_t) * x0 + self.start_t * noise, grid)
            return pipe.decode_latents(x)[0].permute(0, 2, 3, 1).numpy()  # (T, H, W, 3) in [0, 1]

    def suffix(self) -> str:
        """'' for the teacher's sampler, else e.g. '_g7.5' (result files of the same run stay apart)."""
        d = Sampler()
        return ((f"_steps{self.steps}" if self.steps != d.steps else "") + (f"_g{self.guidance:g}" if self.guidance != d.guidance else "")
                + (f"_shift{self.shift:g}" if self.shift != d.shift else "")
                + (f"_from{self.start_t:g}" if self.start_t != d.start_t else "")
                + (f"_gmin{self.guidance_min_t:g}" if self.guidance_min_t != d.guidance_min_t else ""))


def score_rung(pipe, rung: Rung, n: int = EVAL_SPECS, progress: bool = True, sampler: Sampler = Sampler()) -> dict:
    """Coherent-object ShapesBench of `pipe` on the rung's hold-out specs."""
    from tqdm.auto import tqdm

    from edgevid.eval.shapesbench import aggregate, score_video
    from edgevid.pipeline import frames_to_uint8

    fps = 24
    results, captions = [], []
    for i, (spec, caption) in enumerate(tqdm(rung_specs(rung, n), desc="ladder eval", disable=not progress)):
        video = frames_to_uint8(sampler(pipe, caption, rung, i, spec))  # (T, H, W, 3)
        if rung.frames == 1:
            video = np.repeat(video, 2, 0)  # a still: two identical frames (motion is not judged)
        results.append(score_video(video, spec, fps))
        captions.append(caption)
    agg = aggregate(results)
    attrs = ["colour_acc", "shape_acc", "count_correct", "background_correct"]
    if rung.frames > 1:
        attrs.insert(2, "motion_acc")
    # Ungated diagnostics: the legacy colour (present anywhere) and background (right even when no
    # object is found) tell "learns the backdrop, not the objects" from "learns nothing".
    out = {k: agg[k] for k in attrs + ["legacy_prompt_adherence", "legacy_colour_acc", "legacy_background_correct"]}
    out["adherence"] = float(np.mean([agg[k] for k in attrs]))
    # Each video's own adherence (their mean is the one above), so that two runs on the same
    # specs and noise pair up: `edgevid compare A.json B.json --metric adherence`.
    out["per_video"] = [{"index": i, "caption": c, "adherence": float(np.mean([r[k] for k in attrs]))}
                        for i, (r, c) in enumerate(zip(results, captions))]
    return out


OBJECT_ERROR_TS = (0.1, 0.3, 0.5, 0.7, 0.9)


def object_error(pipe, rung: Rung, n: int = 32) -> dict:
    """Where the denoiser's error is: its flow loss on n fresh training-world clips of the rung
    (never in any cache), at fixed t, on the latent cells the objects cover and on the rest, with
    the prompt and without it. A continuous, low-noise companion to the sampled scores: the text's
    share of the object error ("text_gain" = 1 - cond / uncond) says whether the prompt reaches
    the objects at all. Fixed clips, noise and t, so runs compare exactly."""
    from edgevid.train.latents import decoder_channel_weights, heldout_object_latents, masked_flow_error

    bucket = (rung.frames, rung.size, rung.size)
    x0, noise, masks, captions = heldout_object_latents(pipe.vae, rung_source(rung, "train"), n, bucket, dilate=0)
    unet, text = pipe.unet.eval(), pipe.text_encoder
    out = {}
    with torch.no_grad():
        # "_seen": each channel's error weighted by how much the decoder shows it (floor 0), the
        # error a viewer sees; the plain mean is dominated by channels the decoder ignores.
        seen = decoder_channel_weights(pipe.vae, x0[:4], floor=0.0, generator=torch.Generator().manual_seed(0))
        cond, empty = text.encode(captions), text.encode([""] * n)
        for t in OBJECT_ERROR_TS:
            row = {}
            for name, c in (("cond", cond), ("uncond", empty)):
                velocity = lambda x, tt, c=c: unet(x, tt, c.tokens, c.mask)  # noqa: E731
                row[f"object_{name}"], row[f"background_{name}"] = masked_flow_error(velocity, x0, noise, masks, t)
                row[f"object_{name}_seen"], row[f"background_{name}_seen"] = masked_flow_error(
                    velocity, x0, noise, masks, t, seen)
            row["text_gain"] = 1 - row["object_cond"] / row["object_uncond"]
            row["text_gain_seen"] = 1 - row["object_cond_seen"] / row["object_uncond_seen"]
            out[f"t={t:g}"] = row
    return out


def inflate(source, config, spatial_only: bool = False):
    """A UNet of `config` holding `source`'s weights, computing exactly what `source` did.
    Parameters `source` lacks must be ones a newer config adds with a zero-initialised output
    (the pooled-text path, the text refiner), or whole spatial transformers that a config adds
    at another resolution (attention at full latent resolution): their residual branches'
    output projections are zeroed here, so they too start as the identity. A config that only
    widens layers (res_hidden_channels) gets `source` widened into it (models/grow.py).
    `spatial_only`: `source`'s temporal layers are left out, and the config's own (whatever the
    plan) keep their initialisation, whose zeroed output projections make them the identity."""
    from edgevid.models.blocks import SpatialTransformer
    from edgevid.models.grow import unet_chunked, widen_into
    from edgevid.models.unet import SpatioTemporalUNet

    model = SpatioTemporalUNet(config)
    if config.res_hidden_channels != source.config.res_hidden_channels:
        widen_into(source, model, chunked=unet_chunked(model))
        return model
    state = {k: v for k, v in source.state_dict().items() if not (spatial_only and ".temporal." in k)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a layer changed shape
        raise ValueError(f"cannot start {config} from the given UNet: {str(e).splitlines()[1].strip()}") from None
    added = {name for name, m in model.named_modules() if isinstance(m, SpatialTransformer)
             and any(k.startswith(name + ".") for k in missing)}
    for name in added:
        block = model.get_submodule(name)
        for proj in (block.attn.out, block.cross.out, block.mlp.fc2):
            torch.nn.init.zeros_(proj.weight)
            torch.nn.init.zeros_(proj.bias)
    allowed = ("text_embed.", "text_refiner.", *(name + "." for name in added))
    if unexpected or any(not k.startswith(allowed) and not (spatial_only and ".temporal." in k) for k in missing):
        raise ValueError(f"cannot start {config} from the given UNet: missing {missing}, unexpected {unexpected}")
    return model


def train_config(rung: Rung, recipe: Recipe, steps: int | None = None, seed: int | None = None):
    """The TrainConfig of a rung run: BASE_TRAIN, the rung's data and steps, the recipe's changes,
    then the command line's --steps and --seed."""
    from edgevid.config import TrainConfig

    return TrainConfig(**{**BASE_TRAIN, "steps": steps or rung.steps, "batch_size": rung.batch_size,
                          "buckets": ((rung.frames, rung.size, rung.size),), "fps": 24,
                          "num_clips": rung.num_clips, "cache_latents": True, **recipe.train,
                          **({} if seed is None else {"seed": seed})})


def recipe_data(args) -> dict:
    """The ProceduralClips changes of --recipe ({} without one)."""
    return RECIPES[args.recipe].data if args.recipe else {}


def cache_dir(args) -> Path:
    data = recipe_data(args)
    suffix = "".join(f"_{k}{v:g}" if isinstance(v, float) else f"_{k}{v}" for k, v in sorted(data.items()))
    return Path(args.cache_root).expanduser() / f"rung_{args.rung}{suffix}"


def build_cache(rung: Rung, path: Path, progress: bool = True, data: dict | None = None) -> None:
    """Encode the rung's num_clips training clips into `path`, as the trainer's LatentBatches
    would (same files, same posterior samples); clips already there are skipped."""
    from tqdm.auto import tqdm

    from edgevid.config import TrainConfig
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir
    from edgevid.train.latents import LatentBatches

    vae = EdgeVidPipeline.from_pretrained(resolve_model_dir("teacher")).vae.eval()
    bucket = (rung.frames, rung.size, rung.size)
    batches = LatentBatches(vae, rung_source(rung, "train", **(data or {})), (bucket,), rung.batch_size, rung.num_clips, True,
                            TrainConfig().seed, path)
    t0 = time.perf_counter()
    for start in tqdm(range(0, rung.num_clips, 16), desc="latent cache", disable=not progress):
        batches.fill(range(start, min(start + 16, rung.num_clips)), bucket)
    print(f"cache of {rung.num_clips} clips in {path}: {time.perf_counter() - t0:.0f} s")


def vae_ceiling(vae, rung: Rung, n: int = EVAL_SPECS) -> dict:
    """The rung's scores of ground truth encoded and decoded by `vae`: what a perfect denoiser
    could reach through it."""
    from edgevid.data.world import render_video
    from edgevid.pipeline import frames_to_uint8

    class Reconstruct:  # stands in for a pipeline: the prompt is ignored, the spec is rendered
        def __init__(self):
            self.specs = iter(rung_specs(rung, n))

        def __call__(self, caption, num_frames, height, width, **_):
            spec, _ = next(self.specs)
            video = torch.from_numpy(render_video(spec, num_frames, height, width, 24))
            x = video.permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (T, H, W, 3) -> (1, 3, T, H, W)
            with torch.no_grad():
                rec = vae.decode(vae.encode(x).mode())[0]  # (3, T, H, W)
            frames = ((rec.clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).numpy()  # (T, H, W, 3) in [0, 1]
            return type("Out", (), {"frames": [frames]})

    return score_rung(Reconstruct(), rung, n, progress=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rung", required=True, choices=sorted(RUNGS))
    p.add_argument("--recipe", choices=sorted(RECIPES))
    p.add_argument("--run-dir", help="run folder (checkpoints, log, ladder.json)")
    p.add_argument("--cache-root", default="~/runs/ladder/cache",
                   help="shared latent caches, one folder per rung (default ~/runs/ladder/cache)")
    p.add_argument("--build-cache", action="store_true", help="only encode the rung's clips into its shared cache")
    p.add_argument("--ceiling", action="store_true",
                   help="only score ground truth through --decoder's VAE on the rung (no training) and print it")
    p.add_argument("--steps", type=int, help="override the rung's fixed step count (not a ladder figure then)")
    p.add_argument("--init-from", help="model folder whose UNet starts the run (default: from scratch)")
    p.add_argument("--plan", "--temporal-plan", dest="temporal_plan", metavar="KEY",
                   help="the UNet's temporal layers as an `edgevid search` plan key, e.g. "
                        "'conv1d1-self_attn1d3-self_attn1d2|self_attn1d1'; with --init-from only its spatial "
                        "layers are kept and the plan's temporal layers start as the identity. A key with a "
                        "spatial part ('...+sa0101-h32.64.80') also shrinks the spatial blocks, inherited as the "
                        "search's candidates are (search/quality.py: inherit_backbone)")
    p.add_argument("--decoder", default="teacher",
                   help="model whose VAE decodes the eval samples (same latent space; default teacher)")
    p.add_argument("--eval-specs", type=int, default=EVAL_SPECS)
    p.add_argument("--eval-only", action="store_true", help="score the run's last checkpoint again")
    p.add_argument("--model", help="score this model folder's UNet on the rung instead (no training; the JSON goes "
                                   "to --run-dir when given)")
    p.add_argument("--guidance", type=float, default=EVAL_GUIDANCE, help=f"eval guidance scale (default {EVAL_GUIDANCE})")
    p.add_argument("--shift", type=float, default=1.0, help="eval timestep shift, > 1 spends more steps at high noise")
    p.add_argument("--start-t", type=float, default=1.0,
                   help="diagnostic (SDEdit): start from the ground truth noised to this t in (0, 1) instead of "
                        "from noise; says where in the trajectory the objects are lost (default 1 = off)")
    p.add_argument("--guidance-min-t", type=float, default=0.0,
                   help="guidance only at t >= this (below it the conditional branch alone; default 0 = always)")
    p.add_argument("--eval-steps", type=int, default=EVAL_STEPS, help=f"eval sampling steps (default {EVAL_STEPS})")
    p.add_argument("--export-ema", metavar="DIR",
                   help="with --eval-only: also write the checkpoint's EMA as a pipeline folder (the teacher's VAE "
                        "and text encoder), e.g. campaign/<run> so that a new machine can continue with --init-from")
    p.add_argument("--seed", type=int,
                   help="training seed: batch order, noise, timesteps and the new layers' initialisation (default "
                        "TrainConfig's); a second seed of a run says how much of a difference is the run's own noise. "
                        "The eval's specs and noise do not change with it")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--samples", action="store_true", help="also write RUN_DIR/samples.png (truth above, samples below)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.eval_specs < 1 or (args.steps is not None and args.steps < 1) or args.threads < 1 or args.eval_steps < 1:
        p.error("--eval-specs, --eval-steps, --steps and --threads must be >= 1")
    if args.guidance < 1 or args.shift <= 0 or not 0 < args.start_t <= 1 or not 0 <= args.guidance_min_t < 1:
        p.error("--guidance must be >= 1, --shift > 0, --start-t in (0, 1] and --guidance-min-t in [0, 1)")
    sampler = Sampler(args.eval_steps, args.guidance, args.shift, args.start_t, args.guidance_min_t)
    torch.set_num_threads(args.threads)
    if args.ceiling:
        from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

        vae = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.decoder)).vae.eval()
        print(json.dumps({"rung": args.rung, "decoder": args.decoder, "ceiling": vae_ceiling(vae, RUNGS[args.rung],
                                                                                              args.eval_specs)}))
        return 0
    if args.build_cache:
        build_cache(RUNGS[args.rung], cache_dir(args), progress=not args.no_progress,
                    data=recipe_data(args))
        return 0
    if args.model:
        return score_model(args, sampler)
    if not (args.recipe and args.run_dir):
        p.error("--recipe and --run-dir are needed (unless --ceiling or --model)")

    from edgevid.config import UNET_PRESETS
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir
    from edgevid.text.minilm import MiniLMTextEncoder
    from edgevid.train.checkpoint import latest_checkpoint, load_checkpoint
    from edgevid.train.t2v import train_t2v

    rung = RUNGS[args.rung]
    recipe = RECIPES[args.recipe]
    unet_changes, train_changes = recipe.unet, recipe.train
    teacher = EdgeVidPipeline.from_pretrained(resolve_model_dir("teacher"))
    text = MiniLMTextEncoder.from_package()
    unet_cfg = dataclasses.replace(UNET_PRESETS["small"], in_channels=teacher.vae.config.latent_channels,
                                   out_channels=teacher.vae.config.latent_channels, **unet_changes)
    from edgevid.search.space import UNetPlan

    if args.temporal_plan:
        unet_cfg = UNetPlan.from_key(args.temporal_plan).to_config(unet_cfg)
    train_cfg = train_config(rung, recipe, args.steps, args.seed)
    if args.seed is not None:
        torch.manual_seed(args.seed)  # the inherited or inflated UNet's new layers
    init = None
    init_from = args.init_from or recipe.init
    if init_from:
        source_unet = EdgeVidPipeline.from_pretrained(resolve_model_dir(init_from)).unet
        if args.temporal_plan and UNetPlan.from_key(args.temporal_plan).spatial is not None:
            from edgevid.search.quality import inherit_backbone

            init = SpatioTemporalUNet(unet_cfg)
            inherit_backbone(source_unet, init)  # the shrunk spatial blocks; temporal layers start as the identity
        else:
            init = inflate(source_unet, unet_cfg, spatial_only=bool(args.temporal_plan))
    run_dir = Path(args.run_dir).expanduser()
    t0 = time.perf_counter()
    if args.eval_only:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            p.error(f"{run_dir} has no checkpoint to score")
        model, ema = SpatioTemporalUNet(unet_cfg), SpatioTemporalUNet(unet_cfg)
        load_checkpoint(ckpt, model, None, ema)  # weights only: any run's parameter groups
        train_s = None
        if args.export_ema:
            EdgeVidPipeline(teacher.vae, ema.eval(), text, teacher.defaults).save_pretrained(args.export_ema)
            print(f"wrote the EMA of {ckpt} to {args.export_ema}", flush=True)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        link = run_dir / "latent_cache"
        if not link.exists():
            cache_dir(args).mkdir(parents=True, exist_ok=True)
            link.symlink_to(cache_dir(args), target_is_directory=True)
        source = rung_source(rung, "train", **recipe.data)
        _, ema = train_t2v(run_dir, unet_cfg, train_cfg, teacher.vae, text, source,
                           data_description={"ladder_rung": args.rung, "recipe": args.recipe},
                           resume=args.resume, progress=not args.no_progress, init_unet=init)
        train_s = time.perf_counter() - t0
    pipe = eval_pipeline(args.decoder, ema.cpu(), text, rung)
    t1 = time.perf_counter()
    scores = score_rung(pipe, rung, args.eval_specs, progress=not args.no_progress, sampler=sampler)
    scores["object_error"] = object_error(pipe, rung)
    result = {"rung": args.rung, "rung_config": dataclasses.asdict(rung), "recipe": args.recipe,
              "temporal_plan": args.temporal_plan,
              "unet_changes": unet_changes, "train_changes": train_changes, "steps": train_cfg.steps,
              "seed": train_cfg.seed,
              "init_from": init_from, "decoder": args.decoder, "eval_specs": args.eval_specs,
              "sampler": dataclasses.asdict(sampler),
              "train_seconds": train_s, "eval_seconds": time.perf_counter() - t1, "scores": scores,
              "per_video": scores.pop("per_video")}
    name = "ladder" + ("_eval" if args.eval_only else "") + ("" if args.decoder == "teacher" else f"_{Path(args.decoder).name}")
    name += ("" if args.eval_specs == EVAL_SPECS else f"_{args.eval_specs}specs") + sampler.suffix()
    name += ".json"  # the training run's own result (ladder.json) is never overwritten by a re-score
    (run_dir / name).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["scores"], indent=1))
    if args.samples:
        write_samples(pipe, rung, run_dir / name.replace("ladder", "samples").replace(".json", ".png"), sampler=sampler)
    return 0


def eval_pipeline(decoder: str, unet, text, rung: Rung):
    """`unet` and `text` with the VAE of the model `decoder`, at the rung's size, in fp32 (scores
    comparable across CPUs and with the earlier rungs)."""
    from edgevid.pipeline import EdgeVidPipeline, GenerationDefaults, resolve_model_dir

    vae = EdgeVidPipeline.from_pretrained(resolve_model_dir(decoder)).vae
    return EdgeVidPipeline(vae, unet.eval(), text, GenerationDefaults(
        num_frames=rung.frames, height=rung.size, width=rung.size, fps=24), precision="fp32")


def score_model(args, sampler: Sampler) -> int:
    """Score a saved model folder's UNet on the rung, decoded by --decoder's VAE (sampler experiments)."""
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    rung = RUNGS[args.rung]
    model = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
    pipe = eval_pipeline(args.decoder, model.unet, model.text_encoder, rung)
    t0 = time.perf_counter()
    scores = score_rung(pipe, rung, args.eval_specs, progress=not args.no_progress, sampler=sampler)
    scores["object_error"] = object_error(pipe, rung)
    result = {"rung": args.rung, "model": str(args.model), "decoder": args.decoder, "eval_specs": args.eval_specs,
              "sampler": dataclasses.asdict(sampler), "eval_seconds": time.perf_counter() - t0, "scores": scores,
              "per_video": scores.pop("per_video")}
    print(json.dumps(result["scores"], indent=1))
    if args.run_dir:
        run_dir = Path(args.run_dir).expanduser()
        run_dir.mkdir(parents=True, exist_ok=True)
        name = f"ladder_model{'' if args.eval_specs == EVAL_SPECS else f'_{args.eval_specs}specs'}{sampler.suffix()}"
        (run_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        if args.samples:
            write_samples(pipe, rung, run_dir / f"{name.replace('ladder', 'samples')}.png", sampler=sampler)
    return 0


def write_samples(pipe, rung: Rung, path: Path, n: int = 8, sampler: Sampler = Sampler()) -> None:
    """A strip of the first n eval prompts: ground truth above, the model's sample below."""
    from PIL import Image

    from edgevid.data.world import render_video
    from edgevid.pipeline import frames_to_uint8

    tile = 128
    img = Image.new("RGB", (n * tile, 2 * tile), "white")
    for i, (spec, caption) in enumerate(rung_specs(rung, n)):
        frames = sampler(pipe, caption, dataclasses.replace(rung, frames=1), i, spec)
        truth = render_video(spec, 1, rung.size, rung.size, 24)[0]
        img.paste(Image.fromarray(truth).resize((tile, tile)), (i * tile, 0))
        img.paste(Image.fromarray(frames_to_uint8(frames)[0]).resize((tile, tile)), (i * tile, tile))
    img.save(path)


if __name__ == "__main__":
    raise SystemExit(main())
