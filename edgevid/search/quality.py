"""The search's quality proxy (SnapGen-V §3.2, App. A: each candidate inherits the trained spatial
backbone, frozen, and only its temporal layers are trained, briefly, on precomputed video latents).

    proxy = QualityProxy(teacher_pipe, ProxyConfig(), cache_dir=Path("~/runs/search"))
    proxy(plan) -> quality in [0, 1]

Data are the learnability ladder's video rung (issue 16: 17 frames, one object on a solid
background, camera-free), so a candidate is judged on motion alone. Two metrics (`ProxyConfig.metric`):
- "shapesbench": samples scored by ShapesBench, quality = mean(motion accuracy of the coherent
  objects, motion smoothness, subject consistency). It needs a backbone that draws coherent
  objects at the proxy's size; below that, motion accuracy is 0 for every candidate.
- "flow_loss": the candidate's rectified-flow loss on held-out clips (never trained on), at fixed
  t, noise and clips, on the latent cells the moving object covers; quality = the share of the
  spatial-only model's loss that the temporal layers remove, 1 - L / L_spatial. Continuous and
  paired between candidates, and no sampling: it steers the search before the backbone draws
  clean objects, and costs a few seconds instead of the sampling.
The latents are encoded once into `cache_dir/latents` and shared by every candidate; results are
cached in `cache_dir/quality.json` by (plan, settings), so a repeated or resumed search pays for
each architecture once. `seconds_per_evaluation` records what one evaluation cost.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgevid.config import CHANNEL_WEIGHTINGS, TrainConfig, config_to_dict
from edgevid.search.space import UNetPlan


@dataclass(frozen=True)
class ProxyConfig:
    frames: int = 17  # 5 latent frames: the shortest clip with real motion
    size: int = 128  # 16x16 latents: ~5x cheaper than 256, motion still resolvable
    steps: int = 150  # temporal-layer training steps per candidate (the paper: 20K on GPUs)
    batch_size: int = 4
    lr: float = 5e-4  # only the new temporal layers train, from their zero-initialised outputs
    num_clips: int = 400  # one shared latent cache for every candidate
    eval_specs: int = 8
    sample_steps: int = 25
    guidance: float = 5.0
    fps: int = 8
    seed: int = 0  # the training clips, their latent cache and the held-out clips
    # The temporal layers' initialisation and the order of training batches; None = `seed`. Varying
    # it alone measures the proxy's own noise on one shared latent cache (`edgevid search score`).
    train_seed: int | None = None
    metric: str = "shapesbench"  # or "flow_loss" (module docstring)
    heldout_clips: int = 32  # flow_loss: held-out clips, each at every t of heldout_ts
    heldout_ts: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    # "decoder": the candidates' training loss and the held-out flow loss weight each latent channel
    # by the decoder's sensitivity to it (train/latents.py: decoder_channel_weights); "uniform":
    # plain, which 60-80 % of the time measures channels the decoder does not show (docs/LADDER.md).
    channel_weighting: str = "decoder"
    # 0: the backbone's spatial layers stay frozen (a temporal search, the paper's). > 0: they train
    # too, at this lr, beside the temporal layers: a spatial search's shrunk backbone must adapt,
    # and every candidate (the unshrunk one and the spatial-only reference too) trains the same way.
    spatial_lr: float = 0.0

    def __post_init__(self):
        if self.metric not in ("shapesbench", "flow_loss"):
            raise ValueError(f"ProxyConfig.metric must be 'shapesbench' or 'flow_loss', got {self.metric!r}")
        if self.channel_weighting not in CHANNEL_WEIGHTINGS:
            raise ValueError(f"ProxyConfig.channel_weighting must be one of {CHANNEL_WEIGHTINGS}, got {self.channel_weighting!r}")


def _settings_key(cfg: ProxyConfig, backbone: str) -> str:
    proxy = dataclasses.asdict(cfg)
    if proxy["train_seed"] is None:
        del proxy["train_seed"]  # the key results were cached under before the field existed
    if proxy["spatial_lr"] == 0.0:
        del proxy["spatial_lr"]  # likewise
    text = json.dumps({"proxy": proxy, "backbone": backbone}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class QualityProxy:
    def __init__(self, pipe, cfg: ProxyConfig = ProxyConfig(), cache_dir: str | Path = "search_cache",
                 progress: bool = False):
        from edgevid.data import ProceduralClips

        self.pipe, self.cfg, self.progress = pipe, cfg, progress
        self.base = pipe.unet.config
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        backbone_id = hashlib.sha256(json.dumps(config_to_dict(self.base), sort_keys=True).encode()
                                     + b"".join(p.detach().numpy().tobytes()[:64] for p in pipe.unet.parameters())
                                     ).hexdigest()[:12]
        self.settings = _settings_key(cfg, backbone_id)
        self.results_path = self.cache_dir / "quality.json"
        self.results = json.loads(self.results_path.read_text()) if self.results_path.is_file() else {}
        self.source = ProceduralClips(split="train", seed=cfg.seed, fps=cfg.fps, camera_prob=0.0, max_objects=1,
                                      backgrounds=("solid",))
        self.seconds_per_evaluation: list[float] = []
        self._heldout = None  # flow_loss: the held-out clips, encoded on first use
        self._channel_weights = None  # (C,) or None: measured once, on the first latents seen

    def __call__(self, plan: UNetPlan) -> float:
        key = f"{self.settings}:{plan.key}"
        if key in self.results:
            return self.results[key]["quality"]
        t0 = time.perf_counter()
        unet = self.train_candidate(plan)
        if self.cfg.metric == "flow_loss":
            scores = {"heldout_loss": self.heldout_loss(unet), "spatial_only_loss": self.spatial_only_loss()}
            quality = 1.0 - scores["heldout_loss"] / scores["spatial_only_loss"]
        else:
            scores = self.score(unet)
            quality = float(np.mean([scores["motion_acc"], scores["motion_smoothness"], scores["subject_consistency"]]))
        seconds = time.perf_counter() - t0
        self.seconds_per_evaluation.append(seconds)
        self.results[key] = {"quality": quality, **scores, "seconds": round(seconds, 1), "plan": plan.key}
        self.results_path.write_text(json.dumps(self.results, indent=2, sort_keys=True) + "\n")
        return quality

    def train_candidate(self, plan: UNetPlan):
        """The backbone's weights in the candidate's UNet (`inherit_backbone`); its temporal layers
        train, and with `spatial_lr` > 0 its spatial layers too."""
        from edgevid.flow.loss import rectified_flow_loss
        from edgevid.models.unet import SpatioTemporalUNet
        from edgevid.text import PromptCache
        from edgevid.train.latents import LatentBatches
        from edgevid.train.loop import step_generator

        cfg = self.cfg
        train_seed = cfg.seed if cfg.train_seed is None else cfg.train_seed
        torch.manual_seed(train_seed)
        unet = SpatioTemporalUNet(plan.to_config(self.base))
        inherit_backbone(self.pipe.unet, unet)
        temporal = [p for n, p in unet.named_parameters() if ".temporal." in n]
        spatial = [p for n, p in unet.named_parameters() if ".temporal." not in n] if cfg.spatial_lr > 0 else []
        for p in unet.parameters():
            p.requires_grad_(False)
        for p in temporal + spatial:
            p.requires_grad_(True)
        train = TrainConfig(buckets=((cfg.frames, cfg.size, cfg.size),), batch_size=cfg.batch_size,
                            num_clips=cfg.num_clips, cache_latents=True, seed=cfg.seed)
        batches = LatentBatches(self.pipe.vae, self.source, train.buckets, cfg.batch_size, cfg.num_clips, True,
                                cfg.seed, self.cache_dir / "latents")
        prompts = PromptCache(self.pipe.text_encoder)
        if temporal or spatial:
            groups = [{"params": temporal, "lr": cfg.lr}, {"params": spatial, "lr": cfg.spatial_lr}]
            optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.0)
            unet.train()
            for step in range(cfg.steps):
                g = step_generator(train_seed, step)
                x0, captions = batches(step, g)
                text = prompts.encode(captions)
                w = self.channel_weights(x0)
                loss = rectified_flow_loss(lambda x, t: unet(x, t, text.tokens, text.mask), x0, generator=g,
                                           weight=None if w is None else w.view(1, -1, 1, 1, 1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return unet.eval()

    def spatial_only_loss(self) -> float:
        """The held-out loss of the backbone without temporal layers (computed once, cached)."""
        key = f"{self.settings}:spatial-only"
        if key not in self.results:
            plan = UNetPlan(((None, 0),) * (len(self.base.channels) + 1))
            self.results[key] = {"heldout_loss": self.heldout_loss(self.train_candidate(plan))}
        return self.results[key]["heldout_loss"]

    def heldout_loss(self, unet) -> float:
        """Mean flow loss on the object cells of `heldout_clips` clips past the training cache,
        at every t of heldout_ts, with fixed noise: the same numbers for every candidate."""
        from edgevid.train.latents import heldout_object_latents, masked_flow_error

        if self._heldout is None:
            bucket = (self.cfg.frames, self.cfg.size, self.cfg.size)
            x0, noise, masks, captions = heldout_object_latents(self.pipe.vae, self.source, self.cfg.heldout_clips, bucket)
            self._heldout = (x0, noise, masks, self.pipe.text_encoder.encode(captions))
        x0, noise, masks, text = self._heldout
        velocity = lambda x, t: unet(x, t, text.tokens, text.mask)  # noqa: E731
        w = self.channel_weights(x0)
        losses = [masked_flow_error(velocity, x0, noise, masks, t, w)[0] for t in self.cfg.heldout_ts]
        return float(np.mean(losses))

    def channel_weights(self, x0: torch.Tensor) -> torch.Tensor | None:
        """The proxy's per-channel loss weights (C,), measured on the first latents it is given."""
        from edgevid.train.latents import decoder_channel_weights

        if self.cfg.channel_weighting == "uniform":
            return None
        if self._channel_weights is None:
            with torch.no_grad():
                self._channel_weights = decoder_channel_weights(self.pipe.vae, x0[:4],
                                                                generator=torch.Generator().manual_seed(self.cfg.seed))
        return self._channel_weights

    def score(self, unet) -> dict:
        from edgevid.data.captions import canonical_caption
        from edgevid.data.splits import sample_spec
        from edgevid.eval.shapesbench import aggregate, score_video
        from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8

        cfg = self.cfg
        pipe = EdgeVidPipeline(self.pipe.vae, unet, self.pipe.text_encoder, self.pipe.defaults, precision="fp32")
        rng = np.random.default_rng(12345)
        results = []
        for i in range(cfg.eval_specs):
            spec = sample_spec(rng, "holdout", camera_prob=0.0, max_objects=1, backgrounds=("solid",))
            frames = pipe(canonical_caption(spec), num_frames=cfg.frames, height=cfg.size, width=cfg.size,
                          num_inference_steps=cfg.sample_steps, guidance_scale=cfg.guidance,
                          generator=torch.Generator().manual_seed(i)).frames[0]
            results.append(score_video(frames_to_uint8(frames), spec, cfg.fps))
        agg = aggregate(results)
        return {k: agg[k] for k in ("motion_acc", "motion_smoothness", "subject_consistency", "prompt_adherence",
                                    "dynamic_fraction")}


def inherit_backbone(backbone: torch.nn.Module, candidate: torch.nn.Module, keep_temporal: bool = False) -> None:
    """Load the trained backbone's spatial weights into `candidate`, a UNet of the same layout whose
    spatial blocks a plan may have shrunk. A dropped spatial transformer's weights are left out; a
    ResBlock narrowed to k hidden channels keeps the backbone's k most important ones, by
    |norm2 scale| x the norm of conv2's weights that read the channel (what the channel can
    contribute to the block's output), in their original order. The candidate's temporal layers
    keep their (identity) initialisation, or with `keep_temporal` the backbone's where it has a
    layer of the same type and width in the same place. Unshrunk, the candidate computes what the
    backbone does."""
    from edgevid.models.blocks import ResBlock

    source, target = backbone.state_dict(), candidate.state_dict()
    state = {}
    for name, block in candidate.named_modules():
        if not isinstance(block, ResBlock) or ".temporal." in f"{name}.":
            continue
        full = backbone.get_submodule(name)
        k, hidden = block.conv1.out_channels, full.conv1.out_channels
        if k == hidden:
            continue
        if k > hidden:
            raise ValueError(f"{name} has {k} hidden channels, the backbone's {hidden}: a plan can only shrink it")
        importance = full.norm2.weight.detach().abs() * full.conv2.weight.detach().flatten(2).norm(dim=(0, 2))
        keep = importance.topk(k).indices.sort().values
        both = torch.cat([keep, keep + hidden])  # emb writes (scale, shift), each `hidden` wide
        slices = {"conv1.weight": (0, keep), "conv1.bias": (0, keep), "emb.weight": (0, both), "emb.bias": (0, both),
                  "norm2.weight": (0, keep), "norm2.bias": (0, keep), "conv2.weight": (1, keep)}  # (dim, channels)
        full_state = full.state_dict()
        for key, (dim, index) in slices.items():
            state[f"{name}.{key}"] = full_state[key].index_select(dim, index)
    if keep_temporal:
        for key, value in target.items():
            block, sep, rest = key.partition(".temporal.")
            if not sep or key not in source or source[key].shape != value.shape:
                continue
            layer = f"{block}.temporal.{rest.split('.')[0]}"  # e.g. down_blocks.0.0.temporal.0
            if type(backbone.get_submodule(layer)) is type(candidate.get_submodule(layer)):
                state[key] = source[key]
    for key, value in target.items():
        if ".temporal." in key or key in state:
            continue
        if key not in source or source[key].shape != value.shape:
            raise ValueError(f"the candidate's spatial layer {key} {tuple(value.shape)} is not in the backbone "
                             f"{tuple(source[key].shape) if key in source else '(absent)'}: a plan can only shrink it")
        state[key] = source[key]
    missing, _ = candidate.load_state_dict(state, strict=False)
    if any(".temporal." not in k for k in missing):
        raise ValueError(f"the candidate's spatial layers were not all inherited: {missing}")
