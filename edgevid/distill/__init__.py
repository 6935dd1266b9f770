"""Adversarial step distillation (SnapGen-V §3.3): teacher -> few-step, guidance-free student."""
from edgevid.distill.discriminator import Discriminator
from edgevid.distill.losses import (
    discriminator_hinge_loss,
    fake_sample,
    generator_adversarial_loss,
    normalized_pseudo_huber_loss,
    predicted_x0,
    pseudo_huber_loss,
)
from edgevid.distill.train import distill, generator_timesteps

__all__ = ["Discriminator", "discriminator_hinge_loss", "distill", "fake_sample", "generator_adversarial_loss",
           "generator_timesteps", "normalized_pseudo_huber_loss", "predicted_x0", "pseudo_huber_loss"]
