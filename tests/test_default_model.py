"""The models shipped inside the package load and generate (short, low resolution: fast).

"default" is the guidance-free distilled student that `edgevid generate` uses (distilled for 4
steps, sampled at 2 since v0.13: the same ShapesBench score, docs/DISTILLATION.md; the searched
architecture of issue 19 since v0.14, docs/SEARCH.md);
"teacher" is the 25-step classifier-free-guided model it was distilled from (`--model teacher`);
"i2v" is the 1-step MobileVD image-to-video student that `edgevid animate` uses.
"""
import numpy as np
import pytest
import torch

from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir


@pytest.mark.parametrize("name, steps, guidance", [("default", 2, 1.0), ("teacher", 25, 3.0)])
def test_shipped_model_loads_and_generates_a_short_clip(name, steps, guidance):
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(name))
    assert type(pipe.text_encoder).__name__ == "MiniLMTextEncoder"  # the real sentence encoder
    d = pipe.defaults
    assert (d.num_inference_steps, d.guidance_scale) == (steps, guidance)
    assert (d.num_frames, d.height, d.width, d.fps) == (121, 256, 256, 24)  # 5 s of 24 fps 256x256
    assert (d.num_frames - 1) % pipe.vae.config.temporal_compression == 0 and d.height % pipe.size_multiple == 0
    # two steps with the model's own guidance, at a small size
    gen = lambda prompt: pipe(prompt, num_frames=5, height=64, width=64, num_inference_steps=min(steps, 2),
                              generator=torch.Generator().manual_seed(0)).frames
    red = gen("a red circle moving right on a white background")
    assert red.shape == (1, 5, 64, 64, 3) and np.isfinite(red).all()
    blue = gen("a blue square moving up on a black background")
    # Not one blank output for every prompt (a single prompt's clip may be nearly uniform: the
    # v0.8 teacher paints a white background with almost nothing on it in two steps at 64 px)
    assert np.concatenate([red, blue]).std() > 0.02
    assert np.abs(red - blue).mean() > 0.01  # the prompt reaches the frames


def test_default_is_the_teachers_searched_student_with_a_compressed_decoder():
    """The student (v0.14) has issue 19's searched architecture: the teacher's UNet with the
    `small-searched` plan's temporal layers and spatial cuts (`edgevid distill --shrink-to
    small-searched`). It shares the teacher's VAE encoder (so the same latent space), its weights
    moved away from the teacher's, and it decodes with the compressed decoder (`edgevid compress
    decoder --preset fast`), much smaller than the teacher's full one."""
    from edgevid.compress.decoder import decoder_parameters
    from edgevid.config import UNET_PRESETS
    from edgevid.search.space import UNetPlan

    student = EdgeVidPipeline.from_pretrained(resolve_model_dir("default"))
    teacher = EdgeVidPipeline.from_pretrained(resolve_model_dir("teacher"))
    searched = UNetPlan.from_config(UNET_PRESETS["small-searched"], spatial=True).to_config(teacher.unet.config)
    assert student.unet.config == searched != teacher.unet.config
    s_vae, t_vae = student.vae.state_dict(), teacher.vae.state_dict()
    encoder = [n for n in t_vae if n.startswith(("spatial_encoder.", "temporal_encoder."))]
    assert encoder and all(torch.equal(s_vae[n], t_vae[n]) for n in encoder)
    assert student.vae.config.shift_factor == teacher.vae.config.shift_factor
    assert student.vae.config.scaling_factor == teacher.vae.config.scaling_factor
    assert decoder_parameters(student.vae) < decoder_parameters(teacher.vae) / 5
    s_unet, t_unet = student.unet.state_dict(), teacher.unet.state_dict()
    shared = [n for n in s_unet if n in t_unet and s_unet[n].shape == t_unet[n].shape]
    assert len(shared) > len(s_unet) // 2  # inherited from the teacher's layout ...
    assert max((s_unet[n] - t_unet[n]).abs().max().item() for n in shared) > 1e-3  # ... and trained since
    assert sum(p.numel() for p in student.unet.parameters()) < 0.8 * sum(p.numel() for p in teacher.unet.parameters())


def test_shipped_image_to_video_model_is_a_compressed_one_step_student():
    """MobileVD's recipe applied to the residual-flow teacher (`edgevid compress mobilevd`): optimized
    cross-attention, temporal multiscaling, pruned temporal blocks and merged funnels, 1 step."""
    from edgevid.config import SVD_UNET_PRESETS
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    pipe = EdgeVidImg2VidPipeline.from_pretrained(resolve_model_dir("i2v"))
    d, cfg = pipe.defaults, pipe.unet.config
    assert (d.num_inference_steps, d.num_frames, d.height, d.width, d.fps) == (1, 17, 256, 512, 24)
    assert cfg.optimized_cross_attention and any(cfg.temporal_downsample) and cfg.funnel_vo_dims
    assert cfg.residual_scale == 0.5  # the flow runs on the motion residual from the image
    assert len(cfg.temporal_block_names()) < len(SVD_UNET_PRESETS["svd-cpu"].temporal_block_names())
    image = np.full((64, 128, 3), 255, np.uint8)
    image[16:48, 48:80] = (220, 30, 30)  # a red square on white
    frames = pipe(image, num_frames=5, height=64, width=128, generator=torch.Generator().manual_seed(0)).frames
    assert frames.shape == (1, 5, 64, 128, 3) and np.isfinite(frames).all()
    # the given image comes back as frame 0, and the square is still there in the last frame
    assert np.abs(frames[0, 0] - image / 255.0).mean() < 0.05
    square = frames[0, -1, 20:44, 52:76]
    assert square[..., 0].mean() > 0.6 and square[..., 1].mean() < 0.4
