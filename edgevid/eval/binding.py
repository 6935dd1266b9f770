"""A low-variance probe of text binding: does the denoiser use the prompt for its objects?

ShapesBench needs a full generation per prompt and its per-video scores are coarse (a 50-spec
paired difference has a standard error of ~0.015). This probe measures the same skill one
denoising step at a time, on fixed clips and fixed noise, so that two checkpoints or two
recipes can be compared in minutes (`benchmarks/text_binding.py`):

    for each scene: render it, encode it (posterior mean) and at each t draw fixed noise,
    x_t = (1 - t) x0 + t eps (SnapGen-V Eq. 1), then compare the velocity error
    |v(x_t, t, c) - (eps - x0)|^2 (Eq. 2) on the latent cells the objects cover and on the
    rest, for three captions c:
      true      the scene's canonical caption
      recolour  the same caption with every object's colour replaced by another valid colour
      empty     "" (the unconditional branch of classifier-free guidance)

    >>> x0, mask, captions = scene_inputs(pipe, specs, frames=9, size=128)
    >>> summary = summarise(binding_errors(pipe, x0, mask, captions, [0.5, 0.9]), [0.5, 0.9])
    >>> summary["mean"]["object_colour_gain"]   # err(recolour) / err(true) - 1 on object cells

A model that binds colour words to its objects has a lower object-cell error with the true
caption than with the recoloured one (gain > 0; a text-blind model gives exactly 0).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from edgevid.data.captions import canonical_caption
from edgevid.data.splits import contrasts
from edgevid.data.world import COLOURS, SceneSpec, render_object_mask, render_video
from edgevid.flow.schedule import interpolate
from edgevid.train.latents import latent_object_mask

CAPTIONS = ("true", "recolour", "empty")


def recoloured(spec: SceneSpec) -> SceneSpec:
    """`spec` with every object's colour replaced by the next colour (in COLOURS order) that no
    object of the scene uses and that contrasts with the background."""
    used = {o.colour for o in spec.objects}
    names = list(COLOURS)
    objects = []
    for o in spec.objects:
        start = names.index(o.colour)
        for k in range(1, len(names)):
            c = names[(start + k) % len(names)]
            if c not in used and contrasts(c, spec.background_colour, spec.background):
                used.add(c)
                objects.append(dataclasses.replace(o, colour=c))
                break
        else:
            raise ValueError(f"no other colour contrasts with {spec.background_colour} {spec.background}")
    return dataclasses.replace(spec, objects=tuple(objects))


def scene_inputs(pipe, specs: list[SceneSpec], frames: int, size: int
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[str]]]:
    """(x0 (N, C, T', H', W') posterior means, object masks (N, 1, T', H', W'), captions by kind)."""
    fps, vae = pipe.defaults.fps, pipe.vae
    latents, masks = [], []
    for spec in specs:
        video = torch.from_numpy(render_video(spec, frames, size, size, fps))  # (T, H, W, 3) uint8
        video = video.permute(3, 0, 1, 2)[None].float().div(127.5).sub(1.0)  # (1, 3, T, H, W)
        with torch.no_grad():
            latents.append(vae.encode_latents(video.to(pipe.device))[0].cpu())
        pixels = torch.from_numpy(render_object_mask(spec, frames, size, size, fps))  # (T, H, W)
        masks.append(latent_object_mask(pixels, vae.config.spatial_compression, vae.config.temporal_compression,
                                        dilate=0))
    captions = {"true": [canonical_caption(s) for s in specs],
                "recolour": [canonical_caption(recoloured(s)) for s in specs], "empty": [""] * len(specs)}
    return torch.stack(latents), torch.stack(masks), captions


@torch.no_grad()
def binding_errors(pipe, x0: torch.Tensor, mask: torch.Tensor, captions: dict[str, list[str]],
                   ts: list[float], seed: int = 0, batch: int = 8) -> dict:
    """Mean velocity error on object and background cells per caption kind and t:
    {(kind, t): (object-cell error, background-cell error)}."""
    if not 0 < float(mask.sum()) < mask.numel():
        raise ValueError("the scenes need both object and background latent cells (is the size too small?)")
    out = {}
    for t in ts:
        g = torch.Generator().manual_seed(seed + int(round(t * 1000)))
        noise = torch.randn(x0.shape, generator=g)  # the same noise for every caption and every model
        x_t = interpolate(x0, noise, torch.full((x0.shape[0],), t))  # Eq. 1
        target = noise - x0  # Eq. 2
        for kind in CAPTIONS:
            obj_sum = bg_sum = 0.0
            for i in range(0, x0.shape[0], batch):
                text = pipe.prompt_cache.encode(captions[kind][i:i + batch])
                xb = x_t[i:i + batch].to(pipe.device)
                tb = torch.full((xb.shape[0],), t, device=pipe.device)
                v = pipe.unet(xb, tb, text.tokens.to(pipe.device), text.mask.to(pipe.device)).float().cpu()
                err = ((v - target[i:i + batch]) ** 2).mean(dim=1, keepdim=True)  # (b, 1, T', H', W')
                m = mask[i:i + batch]
                obj_sum += float((err * m).sum())
                bg_sum += float((err * (1 - m)).sum())
            out[(kind, t)] = (obj_sum / float(mask.sum()), bg_sum / float((1 - mask).sum()))
    return out


def summarise(errors: dict, ts: list[float]) -> dict:
    rows = {}
    for t in ts:
        (o_true, b_true), (o_rec, b_rec), (o_empty, b_empty) = (errors[(k, t)] for k in CAPTIONS)
        rows[f"t={t:g}"] = {"object_err": {"true": o_true, "recolour": o_rec, "empty": o_empty},
                            "background_err": {"true": b_true, "recolour": b_rec, "empty": b_empty},
                            "object_colour_gain": o_rec / o_true - 1, "object_text_gain": o_empty / o_true - 1,
                            "background_text_gain": b_empty / b_true - 1}
    mean = {key: float(np.mean([r[key] for r in rows.values()]))
            for key in ("object_colour_gain", "object_text_gain", "background_text_gain")}
    return {"per_t": rows, "mean": mean}
