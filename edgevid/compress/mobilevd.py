"""MobileVD's compressions of an SVD-architecture UNet (Ben Yahia et al., arXiv 2412.07583), each a
function from a trained SVDUNet to another SVDUNet: a new *config* of the same class plus weights
carried over or merged (DESIGN.md: a compressed network is just another config).

    optimize_cross_attention(unet)        Fig. 2: single-token cross-attention = its value path (exact)
    add_temporal_multiscaling(unet, ...)  Tab. 3: extra temporal down/upsampling (no new weights)
    TemporalBlockGates                    Fig. 4: importance logits -> inclusion probabilities ->
                                          0/1 gates with a straight-through estimator, while training
    prune_temporal_blocks(unet, keep)     Fig. 4: the top-n blocks kept, the others not built (exact
                                          with respect to gates 0/1)
    add_funnels(unet, factor)             Fig. 3, App. B: low-rank adaptors on the attention
                                          projections, coupled singular initialisation (CSI)
    merge_funnels(unet)                   the funnels multiplied into their neighbours (exact)

Training in between (fine-tuning after each step, 1-step adversarial fine-tuning) is the I2V
trainer's job; this module only changes architectures.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from edgevid.config import SVDUNetConfig
from edgevid.models.svd_unet import Attention, SVDUNet, SingleTokenCrossAttention


def rebuild(unet: SVDUNet, config: SVDUNetConfig, state: dict[str, Tensor] | None = None) -> SVDUNet:
    """SVDUNet(config) with every parameter taken from `state` (default: unet's state dict) by name.
    Keys the new model does not have are dropped (pruned blocks, q/k of optimized cross-attention);
    a key it has that the state lacks, or a shape mismatch, is an error."""
    state = unet.state_dict() if state is None else state
    new = SVDUNet(config).to(next(unet.parameters()).device)
    target = new.state_dict()
    missing = [k for k in target if k not in state]
    wrong = [k for k in target if k in state and state[k].shape != target[k].shape]
    if missing or wrong:
        raise ValueError(f"cannot carry the weights over: missing {missing[:3]}, wrong shapes {wrong[:3]}")
    new.load_state_dict({k: state[k] for k in target})
    return new.train(unet.training)


def optimize_cross_attention(unet: SVDUNet) -> SVDUNet:
    """MobileVD Fig. 2: with one context token softmax(q k^T) is 1 for every query, so the
    cross-attention output is to_out(to_v(context)) whatever q and k are; the q/k projections and
    the LayerNorm before them are dropped. The same function for one-token contexts (tested)."""
    return rebuild(unet, dataclasses.replace(unet.config, optimized_cross_attention=True))


def add_temporal_multiscaling(unet: SVDUNet, stages: tuple[bool, ...]) -> SVDUNet:
    """MobileVD Tab. 3: halve the frames after the flagged stages (SVDUNetConfig.temporal_downsample).
    The pooling and repetition carry no weights, so every weight is kept; the model needs
    fine-tuning after it (it is not the same function)."""
    return rebuild(unet, dataclasses.replace(unet.config, temporal_downsample=tuple(stages)))


# --------------------------------------------------------------------------------------
# Learned temporal-block pruning (MobileVD Fig. 4, §3.4)
# --------------------------------------------------------------------------------------
def inclusion_probabilities(logits: Tensor, keep: int) -> Tensor:
    """Importance logits q (N,) -> inclusion probabilities p in [0, 1] with sum(p) = keep: p =
    min(1, c * softmax(q)), c found by water-filling so that the capped probabilities sum to keep."""
    n = logits.shape[0]
    if not 0 < keep <= n:
        raise ValueError(f"keep must be in [1, {n}] (the number of temporal blocks), got {keep}")
    w = torch.softmax(logits, dim=0)
    capped = torch.zeros(n, dtype=torch.bool, device=logits.device)
    for _ in range(n):  # each round caps at least one more block at 1, or ends
        free = keep - capped.sum()
        p = torch.where(capped, torch.ones_like(w), free * w / w[~capped].sum())
        if not (p[~capped] > 1).any():
            return p
        capped = capped | (p >= 1)
    return torch.where(capped, torch.ones_like(w), torch.zeros_like(w))


class TemporalBlockGates(nn.Module):
    """One importance logit per temporal block of `unet`; `sample(g)` draws z_i ~ Bernoulli(p_i)
    (p = inclusion_probabilities(q, keep)) and sets each block's gate to z_i + p_i - sg(p_i): the
    forward pass sees 0/1, the gradient reaches q through p (straight-through estimator). At
    inference the top-`keep` logits are kept (`kept`), and prune_temporal_blocks removes the rest."""

    def __init__(self, unet: SVDUNet, keep: int):
        super().__init__()
        self.names = unet.config.temporal_block_names()
        self.blocks = [unet.get_submodule(name) for name in self.names]  # not registered: unet owns them
        if not 0 < keep <= len(self.names):
            raise ValueError(f"keep must be in [1, {len(self.names)}] (the model's temporal blocks), got {keep}")
        self.keep = keep
        self.logits = nn.Parameter(torch.zeros(len(self.names)))

    def probabilities(self) -> Tensor:
        return inclusion_probabilities(self.logits, self.keep)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        p = self.probabilities()
        z = (torch.rand(p.shape, generator=generator).to(p.device) < p).to(p.dtype)
        gates = z + p - p.detach()  # straight-through: value z, gradient of p
        for block, gate in zip(self.blocks, gates):
            block.gate = gate
        return z

    def clear(self) -> None:
        for block in self.blocks:
            block.gate = None

    def kept(self) -> tuple[bool, ...]:
        """Over the unet's kept blocks (temporal_block_names order): True for the top-`keep` logits."""
        top = set(torch.topk(self.logits.detach(), self.keep).indices.tolist())
        return tuple(i in top for i in range(len(self.names)))


def prune_temporal_blocks(unet: SVDUNet, keep: tuple[bool, ...]) -> SVDUNet:
    """A model without the temporal blocks whose `keep` entry is False (`keep` indexes the unet's
    currently built blocks, temporal_block_names()); the same function as the unet with those
    blocks' gates at 0 (tested)."""
    cfg = unet.config
    current = cfg.temporal_block_names()
    if len(keep) != len(current):
        raise ValueError(f"keep needs one entry per built temporal block ({len(current)}), got {len(keep)}")
    keep_by_name = dict(zip(current, keep))
    full = [keep_by_name.get(name, False) for name in cfg.temporal_block_names(all_blocks=True)]
    funnels = {}
    if cfg.funnel_qk_dims or cfg.funnel_vo_dims:  # widths of layers inside removed blocks must become 0
        removed = [name for name, k in keep_by_name.items() if not k]
        for field in ("funnel_qk_dims", "funnel_vo_dims"):
            dims = list(getattr(cfg, field))
            if dims:
                for i, layer in enumerate(cfg.attention_layer_names(all_layers=True)):
                    if any(layer.startswith(r + ".") for r in removed):
                        dims[i] = 0
            funnels[field] = tuple(dims)
    return rebuild(unet, dataclasses.replace(cfg, temporal_blocks=tuple(full), **funnels))


# --------------------------------------------------------------------------------------
# Channel funnels (MobileVD Fig. 3, App. B)
# --------------------------------------------------------------------------------------
def _inv_sqrt_gram(a: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """(R, R^-1) with R = (a a^T)^(1/2) for a (d, c), regularised by eps * mean eigenvalue."""
    evals, evecs = torch.linalg.eigh(a @ a.T)
    evals = evals.clamp(min=0) + eps * evals.clamp(min=0).mean() + 1e-12
    return (evecs * evals.sqrt()) @ evecs.T, (evecs * evals.rsqrt()) @ evecs.T


def coupled_singular_init(a: Tensor, b: Tensor, rank: int, eps: float = 1e-4) -> tuple[Tensor, Tensor]:
    """CSI for a funnel pair: a, b (d, c) are the two projections whose product a^T b the layer
    uses (q/k: logits x^T Wq^T Wk y; v/out: Wout Wv, with a = Wout^T). Returns F_a, F_b (rank, d)
    minimising || a^T (F_a^T F_b - I) b ||_F, i.e. the funnelled layer's best rank-`rank` match of
    the original: with R_a = (a a^T)^(1/2), the optimum is R_a F_a^T F_b R_b = the truncated SVD
    U_r S_r V_r^T of R_a R_b, so F_a = S_r^(1/2) U_r^T R_a^-1 and F_b = S_r^(1/2) V_r^T R_b^-1."""
    ra, ra_inv = _inv_sqrt_gram(a.double(), eps)
    rb, rb_inv = _inv_sqrt_gram(b.double(), eps)
    u, s, vh = torch.linalg.svd(ra @ rb)
    root = s[:rank].sqrt()[:, None]
    f_a = root * (u[:, :rank].T @ ra_inv)
    f_b = root * (vh[:rank] @ rb_inv)
    return f_a.to(a.dtype), f_b.to(b.dtype)


class Funnel(nn.Linear):
    """A funnel: a bias-free linear map between a projection and the attention (reduces d -> r,
    `after` a projection) or between the attention and to_out (r -> d, `before` it)."""


def _block_diagonal(blocks: list[Tensor]) -> Tensor:
    return torch.block_diag(*blocks)


def add_funnels(unet: SVDUNet, factor: float = 0.5, layers: list[str] | None = None) -> SVDUNet:
    """Insert channel funnels into the attention layers (default: every built one), in place, and
    return the unet. Each head keeps round(factor * head width) channels of q/k and of v/out:
    to_q -> Funnel(d, r), to_k -> Funnel(d, r), to_v -> Funnel(d, r), Funnel(r, d) -> to_out, CSI
    initialised per head (block-diagonal at init, trained freely after). The funnelled unet runs
    as is (for fine-tuning); merge_funnels folds the funnels into the projections."""
    if not 0 < factor <= 1:
        raise ValueError(f"the funnel factor must be in (0, 1], got {factor}")
    for name in layers or unet.config.attention_layer_names():
        attn = unet.get_submodule(name)
        if isinstance(attn, Attention):
            heads = attn.heads
            dh = attn.to_q.out_features // heads
            r = max(1, round(factor * dh))
            fq, fk = zip(*(coupled_singular_init(attn.to_q.weight[h * dh:(h + 1) * dh].detach(),
                                                 attn.to_k.weight[h * dh:(h + 1) * dh].detach(), r)
                           for h in range(heads)))
            attn.to_q = nn.Sequential(attn.to_q, _funnel(_block_diagonal(list(fq))))
            attn.to_k = nn.Sequential(attn.to_k, _funnel(_block_diagonal(list(fk))))
        elif not isinstance(attn, SingleTokenCrossAttention):
            raise ValueError(f"{name} is not an attention layer")
        heads = getattr(attn, "heads", 1)
        dv = attn.to_v.out_features // heads
        r = max(1, round(factor * dv))
        fo, fv = zip(*(coupled_singular_init(attn.to_out.weight[:, h * dv:(h + 1) * dv].detach().T,
                                             attn.to_v.weight[h * dv:(h + 1) * dv].detach(), r)
                       for h in range(heads)))
        attn.to_v = nn.Sequential(attn.to_v, _funnel(_block_diagonal(list(fv))))
        attn.to_out = nn.Sequential(_funnel(_block_diagonal(list(fo)).T), attn.to_out)
    return unet


def _funnel(weight: Tensor) -> Funnel:
    f = Funnel(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        f.weight.copy_(weight)
    return f


def merge_funnels(unet: SVDUNet) -> SVDUNet:
    """Fold every funnel into its projection (Fig. 3 at inference): to_q' = F_q W_q, to_k' = F_k W_k,
    to_v' = F_v W_v, to_out' = W_out F_o; a new config with the reduced inner widths
    (funnel_qk_dims / funnel_vo_dims). The same function as the funnelled unet (tested)."""
    cfg = unet.config
    names = cfg.attention_layer_names(all_layers=True)
    qk = list(cfg.funnel_qk_dims or [0] * len(names))
    vo = list(cfg.funnel_vo_dims or [0] * len(names))
    state = dict(unet.state_dict())
    for i, name in enumerate(names):
        if name not in cfg.attention_layer_names():
            continue
        attn = unet.get_submodule(name)
        for proj in ("to_q", "to_k", "to_v"):
            module = getattr(attn, proj, None)
            if isinstance(module, nn.Sequential):  # (projection, funnel)
                merged = module[1].weight @ module[0].weight
                for k in (f"{name}.{proj}.0.weight", f"{name}.{proj}.1.weight"):
                    state.pop(k)
                state[f"{name}.{proj}.weight"] = merged
                (qk if proj != "to_v" else vo)[i] = merged.shape[0]
        if isinstance(attn.to_out, nn.Sequential):  # (funnel, to_out)
            funnel, out = attn.to_out
            for k in (f"{name}.to_out.0.weight", f"{name}.to_out.1.weight", f"{name}.to_out.1.bias"):
                state.pop(k)
            state[f"{name}.to_out.weight"] = out.weight @ funnel.weight
            state[f"{name}.to_out.bias"] = out.bias
    new_cfg = dataclasses.replace(cfg, funnel_qk_dims=tuple(qk) if any(qk) else (),
                                  funnel_vo_dims=tuple(vo) if any(vo) else ())
    return rebuild(unet, new_cfg, state)


# --------------------------------------------------------------------------------------
# The whole recipe (`edgevid compress mobilevd`)
# --------------------------------------------------------------------------------------
def compress_mobilevd(run_dir, pipe, cfg, source, *, resume: bool = False, progress: bool = True,
                      device: str = "cpu", log=print):
    """Apply MobileVDConfig `cfg` to an EdgeVidImg2VidPipeline `pipe` (the teacher). Every stage is
    written to RUN_DIR/stages/NN_name as a pipeline folder (score each with `edgevid eval`); all
    stages share RUN_DIR/latent_cache. Returns the final pipeline. With `resume`, finished stages
    are read back and an unfinished one continues from its checkpoint."""
    from pathlib import Path

    from edgevid.config import DistillConfig, TrainConfig
    from edgevid.distill.i2v import distill_i2v
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline, replace_i2v_defaults
    from edgevid.train.i2v import train_i2v

    run_dir = Path(run_dir)
    cache = run_dir / "latent_cache"
    teacher = pipe.unet
    model = teacher
    stage_index = 0

    def stage(name: str, build, steps: int = pipe.defaults.num_inference_steps):
        """Run `build` (or read its folder back) and write the result as a pipeline sampling in `steps`."""
        nonlocal model, stage_index
        stage_index += 1
        folder = run_dir / "stages" / f"{stage_index:02d}_{name}"
        if resume and (folder / "model_index.json").is_file():
            model = EdgeVidImg2VidPipeline.from_pretrained(folder, precision="fp32").unet
            log(f"stage {stage_index} {name}: read back from {folder}")
            return
        model = build(run_dir / "runs" / f"{stage_index:02d}_{name}").cpu().eval()
        EdgeVidImg2VidPipeline(pipe.vae, model, replace_i2v_defaults(pipe, num_inference_steps=steps).defaults
                               ).save_pretrained(folder)
        log(f"stage {stage_index} {name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
            f"wrote {folder}")

    def finetune(stage_dir, init, steps, prune_keep=0):
        train = TrainConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=min(50, steps),
                            buckets=cfg.buckets, fps=cfg.fps, num_clips=cfg.num_clips, cache_latents=cfg.cache_latents,
                            seed=cfg.seed, checkpoint_every=100, log_every=25, lr_schedule="constant",
                            channel_weighting=cfg.channel_weighting, t_mean=cfg.t_mean)
        trained, ema = train_i2v(stage_dir, init.config, train, pipe.vae, source, resume=resume and stage_dir.exists(),
                                 progress=progress, device=device, init_model=init, prune_keep=prune_keep,
                                 cache_dir=cache)
        return trained, ema

    if cfg.optimized_cross_attention:
        stage("cross_attention", lambda d: model.with_unet(optimize_cross_attention(model.unet)))
    if any(cfg.temporal_downsample):
        def multiscale(d):
            init = model.with_unet(add_temporal_multiscaling(model.unet, cfg.temporal_downsample))
            return finetune(d, init, cfg.finetune_steps)[1] if cfg.finetune_steps else init
        stage("temporal_multiscaling", multiscale)
    if cfg.prune_keep_fraction < 1:
        def prune(d):
            n = len(model.unet.config.temporal_block_names())
            keep = max(1, round(cfg.prune_keep_fraction * n))
            trained, ema = finetune(d, model, cfg.prune_steps, prune_keep=keep)
            kept = trained.temporal_gates.kept()
            log(f"temporal blocks kept ({keep} of {n}): "
                + ", ".join(name for name, k in zip(model.unet.config.temporal_block_names(), kept) if k))
            del ema.temporal_gates
            pruned = ema.with_unet(prune_temporal_blocks(ema.unet, kept))
            return finetune(d.with_name(d.name + "_finetune"), pruned, cfg.finetune_steps)[1] \
                if cfg.finetune_steps else pruned
        stage("temporal_pruning", prune)
    if cfg.funnel_factor < 1:
        def funnels(d):
            funnelled = model.with_unet(add_funnels(rebuild(model.unet, model.unet.config), cfg.funnel_factor))
            if cfg.finetune_steps:
                funnelled = finetune(d, funnelled, cfg.finetune_steps)[1]
            return funnelled.with_unet(merge_funnels(funnelled.unet))
        stage("channel_funnels", funnels)
    if cfg.distill_steps:
        distill_cfg = DistillConfig(num_steps=cfg.num_steps, steps=cfg.distill_steps, batch_size=cfg.batch_size,
                                    buckets=cfg.buckets, fps=cfg.fps, num_clips=cfg.num_clips,
                                    cache_latents=cfg.cache_latents, seed=cfg.seed, select_every=cfg.select_every,
                                    select_videos=cfg.select_videos, generator_lr=cfg.distill_lr,
                                    adv_weight=cfg.adv_weight, ema_decay=cfg.distill_ema_decay,
                                    teacher_data=cfg.teacher_data, paired_noise=cfg.teacher_data,
                                    teacher_sample_steps=pipe.defaults.num_inference_steps,
                                    teacher_shift=pipe.defaults.shift)
        student_defaults = replace_i2v_defaults(pipe, num_inference_steps=cfg.num_steps).defaults

        def validate(student) -> float:
            """cfg.select_metric of the student on validation scenes (not the benchmark's)."""
            from edgevid.eval.i2v import VALIDATION_SPEC_SEED, evaluate_i2v

            result, _ = evaluate_i2v(EdgeVidImg2VidPipeline(pipe.vae, student.eval(), student_defaults, precision="fp32"),
                                     limit=cfg.select_videos, spec_seed=VALIDATION_SPEC_SEED, controls=False,
                                     progress=False)
            score = result["summary"][cfg.select_metric]
            log(f"validation {cfg.select_metric} {score:.3f}")
            return score

        stage(f"adversarial_{cfg.num_steps}step", lambda d: distill_i2v(
            d, teacher, pipe.vae, source, distill_cfg, student=model, resume=resume and d.exists(),
            progress=progress, device=device, cache_dir=cache, validate=validate)[0], steps=cfg.num_steps)
    steps = cfg.num_steps if cfg.distill_steps else pipe.defaults.num_inference_steps
    return EdgeVidImg2VidPipeline(pipe.vae, model, replace_i2v_defaults(pipe, num_inference_steps=steps).defaults)
